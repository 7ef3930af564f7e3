//! The snapshot store (`contract.md` section 2b) on a real three-server NATS
//! JetStream cluster: `elig_loader::store` publishes a compiled snapshot
//! once, nodes download and verify it; a corrupt object is refused.

use elig_loader::store::{self, StoreError};
use elig_tests::compile_generation;
use elig_tests::nats::NatsCluster;

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_published_once_and_every_node_downloads_it_verified() {
    let cluster = NatsCluster::start(3);
    let servers = cluster.urls().join(",");
    let work = tempfile::tempdir().unwrap();
    let g7 = compile_generation(&work.path().join("g7"), 7);
    let g8 = compile_generation(&work.path().join("g8"), 8);

    let bucket = store::open(&servers, "SNAPS", Some(3)).await.expect("bucket created on the cluster");
    assert!(matches!(store::download(&bucket, None, work.path()).await, Err(StoreError::NotFound { .. })), "an empty bucket has no newest");
    let p = store::publish(&bucket, &g7).await.expect("publish generation 7");
    assert!(!p.already && p.generation == 7 && p.files == files(&g7).len(), "{p:?}");
    assert_eq!(p.bytes, files(&g7).iter().map(|(_, b)| b.len() as u64).sum::<u64>());
    // The same snapshot again: nothing sent.
    assert!(store::publish(&bucket, &g7).await.unwrap().already);
    store::publish(&bucket, &g8).await.unwrap();
    assert_eq!(store::generations(&bucket).await.unwrap(), [7, 8]);

    // Two nodes, each through its own connection to a different server.
    for (node, url) in cluster.urls().iter().enumerate().take(2) {
        let theirs = store::open(url, "SNAPS", None).await.unwrap();
        let into = work.path().join(format!("node{node}"));
        std::fs::create_dir_all(&into).unwrap();
        let got = store::download(&theirs, None, &into).await.expect("newest generation downloaded");
        assert_eq!(got, into.join("8"));
        assert_eq!(files(&got), files(&g8), "byte for byte");
        let older = store::download(&theirs, Some(7), &into).await.unwrap();
        assert_eq!(files(&older), files(&g7));
        assert!(elig_engine::snapshot::Snapshot::load(&got).is_ok());
    }

    // Another snapshot under a published generation is refused, naming both checksums.
    let other = work.path().join("other7");
    let mut o = elig_loader::compile::CompileOptions::new(&elig_tests::fixture().export, &other);
    (o.generation, o.today, o.retain_lost_days) = (Some(7), Some(20261122), 30);
    elig_loader::compile::compile(&o).unwrap();
    let err = store::publish(&bucket, &other).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { generation: 7, .. }) && err.to_string().contains("never replaced"), "{err}");

    // A corrupt snapshot directory is never published.
    let bad = work.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    for (name, bytes) in files(&g8) {
        std::fs::write(bad.join(name), bytes).unwrap();
    }
    let shard = bad.join("persons-00000.rkyv");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let err = store::publish(&bucket, &bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)) && err.to_string().contains("persons-00000.rkyv"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_in_the_bucket_is_refused_and_nothing_is_left_behind() {
    let cluster = NatsCluster::start(3);
    let servers = cluster.urls().join(",");
    let work = tempfile::tempdir().unwrap();
    let g9 = compile_generation(&work.path().join("g9"), 9);
    let bucket = store::open(&servers, "SNAPS", Some(3)).await.unwrap();
    store::publish(&bucket, &g9).await.unwrap();
    // Someone overwrites one object with other bytes of the same length.
    let client = async_nats::connect(cluster.urls()).await.unwrap();
    let objects = async_nats::jetstream::new(client).get_object_store("SNAPS").await.unwrap();
    let mut bytes = std::fs::read(g9.join("index-serial.rkyv")).unwrap();
    bytes[3] ^= 0x40;
    objects.put("9/index-serial.rkyv", &mut bytes.as_slice()).await.unwrap();

    let into = work.path().join("node");
    std::fs::create_dir_all(&into).unwrap();
    let err = store::download(&bucket, Some(9), &into).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { generation: 9, .. }) && err.to_string().contains("index-serial.rkyv"), "{err}");
    assert_eq!(std::fs::read_dir(&into).unwrap().count(), 0, "no partial snapshot left");
    let err = store::download(&bucket, Some(10), &into).await.unwrap_err();
    assert!(err.to_string().contains("generation 10"), "{err}");
}

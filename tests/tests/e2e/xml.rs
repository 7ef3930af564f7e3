//! The `XmlMsg` documents `elig --format xml` writes, read the way real
//! clinic software reads them (`interface.md`, "What real clients
//! require"): decoded by their XML declaration, parsed into an element tree
//! by an independent XML library (roxmltree), and held to what those clients
//! need: a search-info echo that is complete or absent, `BulkConfirmUnit`
//! elements directly under `MessageBody`, NHI insurer numbers right-aligned
//! in 8 characters, and an `ArbitraryFileIdentifier` that is not the
//! caller's per-query identifier. Every lookup kind, both encodings.

use std::sync::Arc;

use elig_client::cli::{bulk_document, Format};
use elig_client::Client;
use elig_engine::answer::Answer;
use elig_engine::engine::Engine;
use elig_tests::{clock, As, TestServer};
use roxmltree::{Document, Node};

const CLINIC: &str = "1310000011";
const NHI: &str = "273128";

/// A small export with every shape of answer: P1 has NHI insurance and
/// public assistance in force side by side (two entries) and a ticket
/// delegating CLINIC; P2 only a lost qualification.
fn world() -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).expect("export directory");
    let files = [
        ("persons.csv", "person_id,name,name_kana,sex,birth_date\nP1,山田　太郎,ﾔﾏﾀﾞ ﾀﾛｳ,1,19800101\nP2,佐藤　花子,ｻﾄｳ ﾊﾅｺ,2,19900202\n"),
        (
            "insurance.csv",
            "qualification_id,person_id,insurer_number,card_symbol,card_number,branch_number,card_classification,personal_family,insurer_name,qualification_date,disqualification_date,reason_of_loss\n\
             Q1,P1,273128,記号,100,01,01,1,テスト国保,20200101,,\n\
             Q2,P2,06130488,A,200,01,01,1,テスト健保,20150101,20240401,03\n",
        ),
        ("certificates.csv", "serial_number,processing_number,person_id,valid_from,valid_to\nAB01,1000000000000001,P1,20220101,20301231\n"),
        (
            "assistance.csv",
            "assistance_id,person_id,payer_number,recipient_number,welfare_office,start_date,end_date\nA1,P1,12130019,1234566,千代田区福祉事務所,20250101,\n",
        ),
        (
            "tickets.csv",
            "ticket_id,assistance_id,ticket_type,treatment_month,valid_from,valid_to,institution_code,institution_name,treatment_type\n\
             T1,A1,01,202611,20261101,20261130,1310000011,テスト医院,02\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(export.join(name), text).expect("write the export");
    }
    let mut o = elig_loader::compile::CompileOptions::new(&export, dir.path().join("snap"));
    o.today = Some(elig_tests::TODAY);
    o.generation = Some(1);
    let out = elig_loader::compile::compile(&o).expect("compile").out;
    let engine = Arc::new(Engine::open(&out).expect("open"));
    (dir, engine)
}

fn card(insurer: &str, number: &str, birth: &str, id: &str) -> String {
    format!(
        r#"{{"MedicalInstitutionCode":"{CLINIC}","QualificationConfirmationDate":"20261122","ArbitraryIdentifier":"{id}","InsuranceCard":{{"InsurerNumber":"{insurer}","InsuredCardSymbol":"{sym}","InsuredIdentificationNumber":"{number}","InsuredBranchNumber":"01","Birthdate":"{birth}"}}}}"#,
        sym = if insurer.trim() == NHI { "記号" } else { "A" },
    )
}

fn ticket(recipient: &str, id: &str) -> String {
    format!(
        r#"{{"MedicalInstitutionCode":"{CLINIC}","QualificationConfirmationDate":"20261122","ArbitraryIdentifier":"{id}","MedicalTicket":{{"PayerNumber":"12130019","RecipientNumber":"{recipient}","Birthdate":"19800101"}}}}"#
    )
}

fn serial(s: &str) -> String {
    format!(
        r#"{{"MedicalInstitutionCode":"{CLINIC}","QualificationConfirmationDate":"20261122","ArbitraryIdentifier":"m-1","MyNumberCard":{{"CertificateSerialNumber":"{s}"}}}}"#
    )
}

fn processing(p: &str) -> String {
    format!(
        r#"{{"MedicalInstitutionCode":"{CLINIC}","QualificationConfirmationDate":"20261122","ArbitraryIdentifier":"m-2","MyNumberCard":{{"ProcessingNumber":"{p}"}}}}"#
    )
}

/// Decode by the XML declaration, as the clients do.
fn decode(xml: &[u8]) -> String {
    let head = String::from_utf8_lossy(&xml[..xml.len().min(80)]).into_owned();
    let (text, _, errors) = if head.contains(r#"encoding="Shift_JIS""#) {
        encoding_rs::SHIFT_JIS.decode(xml)
    } else {
        assert!(head.contains(r#"encoding="UTF-8""#), "{head}");
        encoding_rs::UTF_8.decode(xml)
    };
    assert!(!errors, "the document decodes in its declared encoding");
    text.into_owned()
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(n: Node, name: &str) -> Option<String> {
    child(n, name).map(|c| c.text().unwrap_or("").to_string())
}

/// What a client reads from one document, after holding it to the rules
/// every one of the three clients needs.
#[derive(Debug, Default)]
struct Read {
    validity: Option<String>,
    code: Option<String>,
    /// (class, insurer number) of each `ResultOfQualificationConfirmation` in `ResultList`.
    entries: Vec<(String, String)>,
    /// `InsurerNumber` of each search-info echo, in document order.
    echoes: Vec<String>,
    /// `BulkConfirmUnit` elements directly under `MessageBody`.
    units: usize,
}

fn read(xml: &[u8], shift_jis: bool) -> Read {
    let text = decode(xml);
    let doc = Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "XmlMsg");
    let header = child(root, "MessageHeader").expect("MessageHeader");
    let body = child(root, "MessageBody").expect("MessageBody");
    assert_eq!(text_of(header, "CharacterCodeIdentifier").as_deref(), Some(if shift_jis { "1" } else { "0" }));
    let mut out = Read { validity: text_of(body, "QualificationValidity"), code: text_of(body, "ProcessingResultCode"), ..Read::default() };
    let mut identifiers = Vec::new();
    for info in doc.descendants().filter(|n| n.has_tag_name("QualificationConfirmSearchInfo")) {
        // Complete or absent: the TypeScript parser refuses anything less.
        for required in ["InsurerNumber", "InsuredIdentificationNumber", "Birthdate", "LimitApplicationCertificateRelatedConsFlg"] {
            let v = text_of(info, required);
            assert!(v.as_deref().is_some_and(|v| !v.trim().is_empty()), "QualificationConfirmSearchInfo without {required}: {text}");
        }
        assert!(matches!(text_of(info, "LimitApplicationCertificateRelatedConsFlg").as_deref(), Some("0" | "1")));
        out.echoes.push(text_of(info, "InsurerNumber").unwrap_or_default());
        identifiers.extend(text_of(info, "ArbitraryIdentifier"));
    }
    if let Some(file_id) = text_of(header, "ArbitraryFileIdentifier") {
        assert!(!identifiers.contains(&file_id), "ArbitraryFileIdentifier names the file, not a person: {file_id}");
    }
    assert!(!doc.descendants().any(|n| n.has_tag_name("BulkConfirmUnitList")), "no wrapper around bulk units");
    out.units = body.children().filter(|c| c.has_tag_name("BulkConfirmUnit")).count();
    assert_eq!(out.units, doc.descendants().filter(|n| n.has_tag_name("BulkConfirmUnit")).count(), "units only under MessageBody");
    let lists = doc.descendants().filter(|n| n.has_tag_name("ResultList"));
    for list in lists {
        for e in list.children().filter(Node::is_element) {
            assert_eq!(e.tag_name().name(), "ResultOfQualificationConfirmation");
            out.entries
                .push((text_of(e, "InsuredCardClassification").unwrap_or_default(), text_of(e, "InsurerNumber").unwrap_or_default()));
        }
    }
    for insurer in doc.descendants().filter(|n| n.has_tag_name("InsurerNumber")) {
        let v = insurer.text().unwrap_or("");
        assert!(v.len() == 8, "an insurer, payer number is 8 characters: '{v}'");
        if v.starts_with(' ') {
            assert!(v.trim_start().len() == 6 && v.trim_start().bytes().all(|b| b.is_ascii_digit()), "NHI right-aligned: '{v}'");
        }
    }
    out
}

fn xml(a: &Answer, shift_jis: bool) -> Vec<u8> {
    Format::Xml { shift_jis }.render(a, false)
}

async fn ask(c: &Client, q: &str) -> Answer {
    c.lookup(q.as_bytes()).await.expect("an answer")
}

#[tokio::test]
async fn every_lookup_kind_reads_as_real_clients_read_it_in_both_encodings() {
    let (_dir, engine) = world();
    let srv = TestServer::start_on(engine, None, Default::default(), false, false).await;
    let c = srv.client(As::Central).await;
    let padded = format!("  {NHI}");
    for sjis in [false, true] {
        // NHI card in force, asked with the padding the real message uses.
        let r = read(&xml(&ask(&c, &card(&padded, "100", "19800101", "c-1")).await, sjis), sjis);
        assert_eq!((r.validity.as_deref(), r.entries.clone()), (Some("1"), vec![("01".to_string(), padded.clone())]));
        assert_eq!(r.echoes, vec![padded.clone()], "the echo pads as the query did");
        // Asked without the padding: the echo still writes the real shape.
        let r = read(&xml(&ask(&c, &card(NHI, "100", "19800101", "c-2")).await, sjis), sjis);
        assert_eq!(r.echoes, vec![padded.clone()]);
        // Lost (2) and unknown (4): echo, no entry for 4.
        let r = read(&xml(&ask(&c, &card("06130488", "200", "19900202", "c-3")).await, sjis), sjis);
        assert_eq!((r.validity.as_deref(), r.entries.len(), r.echoes.len()), (Some("2"), 1, 1));
        let r = read(&xml(&ask(&c, &card("06130488", "999", "19900202", "c-4")).await, sjis), sjis);
        assert_eq!((r.validity.as_deref(), r.entries.len(), r.echoes.len()), (Some("4"), 0, 1));
        // My Number: two entries side by side, no echo (not a card-data query).
        let r = read(&xml(&ask(&c, &serial("AB01")).await, sjis), sjis);
        assert_eq!(r.validity.as_deref(), Some("1"));
        assert_eq!(r.entries, [("01".to_string(), padded.clone()), ("A1".to_string(), "12130019".to_string())]);
        assert!(r.echoes.is_empty());
        // My Number by processing number: the same person, the same entries; an unknown one has none.
        let r = read(&xml(&ask(&c, &processing("1000000000000001")).await, sjis), sjis);
        assert_eq!((r.validity.as_deref(), r.entries.len(), r.echoes.len()), (Some("1"), 2, 0));
        let r = read(&xml(&ask(&c, &processing("1000000000000002")).await, sjis), sjis);
        assert_eq!((r.validity.as_deref(), r.code, r.entries.len()), (Some("4"), None, 0));
        // Medical ticket: the payer number in InsurerNumber, with the consent flag.
        let r = read(&xml(&ask(&c, &ticket("1234566", "t-1")).await, sjis), sjis);
        assert_eq!((r.validity.as_deref(), r.echoes.clone()), (Some("1"), vec!["12130019".to_string()]));
        // Refused: a whole key is echoed as sent; a key that cannot be read is not echoed at all.
        let r = read(&xml(&ask(&c, &card("06130489", "200", "19900202", "bad-1")).await, sjis), sjis);
        assert_eq!((r.code.as_deref(), r.echoes.clone()), (Some("EQ04"), vec!["06130489".to_string()]));
        let r = read(&xml(&ask(&c, &ticket("1234567", "bad-2")).await, sjis), sjis);
        assert_eq!((r.code.as_deref(), r.echoes.len()), (Some("EQ04"), 1));
        for q in ["not json".to_string(), serial(""), card("06130488", "200", "1990", "bad-3").replace(r#","Birthdate":"1990""#, "")] {
            let r = read(&xml(&ask(&c, &q).await, sjis), sjis);
            assert_eq!((r.code.is_some(), r.echoes.len()), (true, 0), "{q}");
        }

        // A bulk inquiry: one BulkConfirmUnit per query, in order, refused items included.
        let queries = vec![
            card(&padded, "100", "19800101", "b-1").into_bytes(),
            b"{broken".to_vec(),
            ticket("1234566", "b-3").into_bytes(),
            card("06130489", "200", "19900202", "b-4").into_bytes(),
        ];
        let (answers, summary) = c.bulk(queries).await.expect("bulk").collect().await.expect("bulk answers");
        let r = read(&xml(&bulk_document(&answers, &summary), sjis), sjis);
        assert_eq!(r.units, 4);
        assert_eq!(r.echoes, [padded.clone(), "12130019".to_string(), "06130489".to_string()], "the broken item has no echo");

        // A delegated-ticket fetch answers in the same shape.
        let q = Client::tickets_query(Some(CLINIC), "202611", Some("20261122"));
        let fetched = c.tickets(&q).await.expect("fetch").collect().await.expect("units");
        let r = read(&xml(&fetched, sjis), sjis);
        assert_eq!((r.units, r.echoes.clone()), (1, vec!["12130019".to_string()]));
        // A month with no delegated ticket: no unit, no wrapper; a refused fetch: its error, no unit.
        let q = Client::tickets_query(Some(CLINIC), "202610", Some("20261122"));
        let fetched = c.tickets(&q).await.expect("fetch").collect().await.expect("no units");
        let r = read(&xml(&fetched, sjis), sjis);
        assert_eq!((r.units, r.code, r.echoes.len()), (0, None, 0));
        let q = Client::tickets_query(Some(CLINIC), "2026-11", Some("20261122"));
        let fetched = c.tickets(&q).await.expect("fetch").collect().await.expect("a refused fetch");
        let r = read(&xml(&fetched, sjis), sjis);
        assert_eq!((r.units, r.code.is_some(), r.echoes.len()), (0, true, 0));
    }
}

/// Offline (`elig-loader lookup`, `View::answer_document`) and eligd answer
/// a malformed query through one refusal path: the same document.
#[tokio::test]
async fn offline_and_server_refusals_are_identical() {
    let (_dir, engine) = world();
    let srv = TestServer::start_on(engine.clone(), None, Default::default(), false, false).await;
    let c = srv.client(As::Central).await;
    let valid = card("06130488", "200", "19900202", "t");
    for q in [
        card("06130489", "200", "19900202", "bad-1"),
        ticket("1234567", "bad-2"),
        "not json".to_string(),
        "[1]".to_string(),
        serial(""),
        valid.replace(CLINIC, "1310000012"),
        valid.replace(r#""QualificationConfirmationDate":"20261122""#, r#""QualificationConfirmationDate":"20261131""#),
        format!("{valid} trailing"),
        valid.replace(r#""InsuredBranchNumber":"01""#, r#""InsuredBranchNumber":"1""#),
        valid.replace(r#""Birthdate""#, r#""Colour":"red","Birthdate""#),
    ] {
        let offline = engine.pin().view().answer_document(q.as_bytes(), clock());
        let served = ask(&c, &q).await;
        assert_eq!(offline.message_body.processing_result_status, "2", "{q}");
        assert_eq!(serde_json::to_string(&served).unwrap(), serde_json::to_string(&offline).unwrap(), "{q}");
    }
}

//! Export CSV files (`contract.md` section 1) on arbitrary bytes, through
//! the loader's decoding layer and row rules: the first byte picks the
//! table, the encoding and gzip; reading never panics, every record is
//! either a row or a reject with a reason.
#![no_main]

use std::path::Path;

use elig_engine::rows::{parse_row, Table};
use elig_loader::export::{Encoding, ExportFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, csv)) = data.split_first() else { return };
    let table = Table::ALL[pick as usize % Table::ALL.len()];
    let encoding = if pick & 0x80 == 0 { Encoding::Utf8 } else { Encoding::ShiftJis };
    let name = if pick & 0x40 == 0 { "fuzz.csv" } else { "fuzz.csv.gz" };
    let reader = Box::new(std::io::Cursor::new(csv.to_vec()));
    let Ok(mut file) = ExportFile::from_reader(Path::new(name), table, encoding, csv.len() as u64, reader) else { return };
    let mut record = csv::StringRecord::new();
    for _ in 0..10_000 {
        match file.next_record(&mut record) {
            Ok(Some(_line)) => {
                if let Err(e) = parse_row(table, &file.fields(&record)) {
                    assert!(!e.reason.is_empty());
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});

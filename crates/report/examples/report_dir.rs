//! `cargo run --release -p speccascade-report --example report_dir -- <dir>`: the report alone,
//! without building the full `speccascade` binary.

fn main() {
    let dir = std::env::args().nth(1).expect("usage: report_dir <results dir>");
    match speccascade_report::report(std::path::Path::new(&dir)) {
        Ok(r) => {
            print!("{}", speccascade_report::table2::markdown(&r.table2));
            println!("wrote {} files under {}", r.files.len(), r.dir.display());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

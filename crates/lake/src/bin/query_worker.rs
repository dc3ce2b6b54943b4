//! The lake's query worker alone: see `auditlake_lake::query::worker_main`.

fn main() -> std::process::ExitCode {
    auditlake_lake::query::worker_main()
}

//! `tributary` command line: wiring only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

use tributary::error::Error;
use tributary::import;
use tributary::task::{self, RunOptions};
use tributary::TaskConfig;

/// Hydrates S3 data lakes from PostgreSQL and MySQL/MariaDB in AWS DMS's S3 layout (CSV or Parquet).
#[derive(Parser)]
#[command(name = "tributary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a task (a full-load task exits 0 when every selected table is written).
    Run {
        /// Task file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Override BucketFolder for this run (date placeholders such as {yyyyMMdd-HHmmss} are expanded); starts a fresh run.
        #[arg(long)]
        bucket_folder: Option<String>,
        /// Start over even if the previous run did not finish.
        #[arg(long)]
        restart: bool,
        /// Never draw progress bars (log lines instead).
        #[arg(long)]
        no_progress: bool,
        /// Serve Prometheus metrics (table statistics, CDC latencies) at this address, e.g. 127.0.0.1:9187.
        #[arg(long)]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Show a task's state and table statistics (DMS names) from its checkpoint; exits 1 when the task failed.
    Status {
        /// Task file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the task file and the prerequisites it can see; print every problem with its fix.
    Validate {
        /// Task file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Remove what the task created: its replication slot, publication and heartbeat table on
    /// the source, its local state, and with --files its objects on the target.
    Drop {
        /// Task file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Do not ask for confirmation (for scripts).
        #[arg(long, short)]
        yes: bool,
        /// Also delete the task's objects on the target (S3 or local folder).
        #[arg(long)]
        files: bool,
    },
    /// Print every key of DMS's task-settings JSON and what Tributary does with it (Markdown).
    Settings,
    /// Write a task file from an AWS DMS task and its two endpoints, as `aws dms
    /// describe-replication-tasks` and `aws dms describe-endpoints` export them.
    ImportDms {
        /// The task: `aws dms describe-replication-tasks --output json` (all of it or one task).
        #[arg(long)]
        task: PathBuf,
        /// The source endpoint: `aws dms describe-endpoints --output json` (all of it or one).
        #[arg(long)]
        source_endpoint: PathBuf,
        /// The S3 target endpoint (may be the same file as --source-endpoint).
        #[arg(long)]
        target_endpoint: PathBuf,
        /// Write the task file here instead of to stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite the -o file if it exists.
        #[arg(long)]
        force: bool,
        /// Which task of a list (ReplicationTaskIdentifier).
        #[arg(long)]
        task_id: Option<String>,
        /// Which endpoint of the --source-endpoint list (EndpointIdentifier); default: the task's.
        #[arg(long)]
        source_id: Option<String>,
        /// Which endpoint of the --target-endpoint list (EndpointIdentifier); default: the task's.
        #[arg(long)]
        target_id: Option<String>,
        /// The environment variable the source password is read from.
        #[arg(long, default_value = tributary::import::DEFAULT_PASSWORD_ENV)]
        password_env: String,
    },
}

fn load(path: &std::path::Path) -> Result<TaskConfig, Error> {
    TaskConfig::load(path, &|name| std::env::var(name).ok())
}

/// Cancels `token` on SIGINT or SIGTERM.
fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("signal received: stopping; finished files are kept, open files discarded");
        token.cancel();
    });
}

/// Asks on the terminal whether to go on; false without a terminal (scripts pass --yes).
fn confirm() -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        err("error: drop asks for confirmation on a terminal; pass --yes to drop without asking\n");
        return false;
    }
    out("Drop all of this? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

fn fail(e: &Error) -> ExitCode {
    err(format_args!("error: {e}\n"));
    ExitCode::from(e.exit_code() as u8)
}

/// Writes to stdout. A reader that went away (`tributary status | head -1`) is not an error:
/// the rest of the output is dropped (Rust ignores SIGPIPE, so `print!` would panic instead).
fn out(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(std::io::stdout().lock(), "{text}");
}

/// [`out`] for stderr.
fn err(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(std::io::stderr().lock(), "{text}");
}

/// The log filter when `TRIBUTARY_LOG` is unset: aws-config warns at length for every provider
/// it tries (IMDS off EC2), and the S3 store reports a missing region or credential itself, once.
const DEFAULT_LOG_FILTER: &str = "info,aws_config=error";

/// Installs the stderr logger; the handle lets a task's `Logging.LogComponents` refine the
/// filter once the task file is read (`TRIBUTARY_LOG`, when set, wins).
fn init_logging() -> Option<reload::Handle<EnvFilter, tracing_subscriber::Registry>> {
    let from_env = EnvFilter::try_from_env("TRIBUTARY_LOG").ok();
    let user_set = from_env.is_some();
    let (filter, handle) =
        reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER)));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    (!user_set).then_some(handle)
}

#[tokio::main]
async fn main() -> ExitCode {
    let log = init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            bucket_folder,
            restart,
            no_progress,
            metrics_addr,
        } => {
            let task = match load(&config) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            if let (Some(handle), false) = (&log, task.log_directives().is_empty()) {
                let filter = format!("{DEFAULT_LOG_FILTER},{}", task.log_directives().join(","));
                let _ = handle.reload(EnvFilter::new(filter));
            }
            let cancel = CancellationToken::new();
            cancel_on_signals(cancel.clone());
            let opts = RunOptions {
                bucket_folder,
                restart,
                progress: !no_progress,
                metrics_addr,
            };
            match task::run(&task, &opts, cancel).await {
                Ok(summary) => {
                    out(summary);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Status { config, json } => {
            let task = match load(&config) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            match task::status::status(&task).await {
                Ok(s) => {
                    if json {
                        out(format_args!(
                            "{}\n",
                            serde_json::to_string_pretty(&s).unwrap_or_default()
                        ));
                    } else {
                        out(task::status::render(&s));
                    }
                    // A failed task is not a healthy one: scripts and probes see it; tables in
                    // error give the run's "some tables failed" code.
                    if s.failed() {
                        ExitCode::from(1)
                    } else if s.tables_in_error() {
                        ExitCode::from(3)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Drop { config, yes, files } => {
            let task = match load(&config) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            let plan = match task::teardown::plan(&task, files).await {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            out(plan.describe());
            if plan.is_empty() {
                return ExitCode::SUCCESS;
            }
            if !yes && !confirm() {
                out("nothing dropped\n");
                return ExitCode::from(1);
            }
            match plan.apply().await {
                Ok(done) => {
                    out(done);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::ImportDms {
            task,
            source_endpoint,
            target_endpoint,
            output,
            force,
            task_id,
            source_id,
            target_id,
            password_env,
        } => {
            let opts = import::ImportOptions {
                task_id,
                source_id,
                target_id,
                password_env: Some(password_env.clone()),
            };
            let written = import::Documents::read(&task, &source_endpoint, &target_endpoint)
                .and_then(|docs| import::import(&docs, &opts))
                .and_then(|text| import::write_output(&text, output.as_deref(), force));
            match (written, output) {
                (Err(e), _) => fail(&e),
                (Ok(()), Some(path)) => {
                    err(format_args!(
                        "wrote {p}; next: export {password_env}=..., read its comments, then tributary validate --config {p}\n",
                        p = path.display()
                    ));
                    ExitCode::SUCCESS
                }
                (Ok(()), None) => ExitCode::SUCCESS,
            }
        }
        Command::Settings => {
            out(tributary::task_settings_table());
            ExitCode::SUCCESS
        }
        Command::Validate { config } => {
            let task = match load(&config) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            let report = task::validate(&task).await;
            for line in &report.ok {
                out(format_args!("ok: {line}\n"));
            }
            for w in &report.warnings {
                out(format_args!("warning: {w}\n"));
            }
            for p in &report.problems {
                out(format_args!("problem: {p}\n"));
            }
            if report.problems.is_empty() {
                out(format_args!("task {} is ready to run\n", task.id()));
                ExitCode::SUCCESS
            } else {
                out(format_args!("{} problem(s) found\n", report.problems.len()));
                ExitCode::from(1)
            }
        }
    }
}

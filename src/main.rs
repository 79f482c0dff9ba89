//! The `boxoffice` binary: arguments -> config -> App::open -> serve -> shutdown.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use boxoffice::app::{Actor, App};
use boxoffice::config::Config;
use boxoffice::domain::Role;

/// jemalloc instead of glibc's malloc: the IO and writer threads allocate and free many small buffers
/// per request, and glibc's malloc and free took about a tenth of a rush's CPU. (mimalloc was as fast
/// but kept a heap per thread: peak RSS 180 MB in a rush against jemalloc's 80.)
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `boxoffice --version`: the crate version and the git commit it was built from (see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BOXOFFICE_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "boxoffice",
    version = VERSION,
    about = "A venue's box office in one binary. With no command: serve on 127.0.0.1:8080 with demo data."
)]
struct Cli {
    /// TOML config file (every key is documented in fixtures/boxoffice.example.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, admin.token). Default: the platform data dir.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Console: hide every action but the door's check-in (for a door laptop).
    #[arg(long, global = true)]
    read_only: bool,
    /// Console: no colours (also when NO_COLOR is set). States are always written out in words.
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API headless (no demo data).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Also show the operator console when standard output is a terminal.
        #[arg(long)]
        console: bool,
    },
    /// The operator console of a box running elsewhere (e.g. headless under systemd), over its API.
    Console {
        /// The box, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        url: String,
        /// A file holding an operator or admin token; the audit log names the token.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy the database to OUT with SQLite's online backup (safe while serving).
    Backup { out: PathBuf },
    /// Integrity check and invariants I1-I4 over the whole file; exit 1 on any violation.
    Check {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (only) on stdout. The secret is not stored and cannot be shown again.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke the active token with this name or id.
    Revoke { name_or_id: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "must be admin, operator or kiosk".to_string())
}

const DB_FILE: &str = "boxoffice.db";
const ADMIN_TOKEN_FILE: &str = "admin.token";

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("boxoffice: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let mut cfg = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    if let Some(dir) = cli.data_dir {
        cfg.data_dir = Some(dir);
    }
    let demo = cli.command.is_none();
    let console = tui::Options {
        read_only: cli.read_only,
        // NO_COLOR: "when present and not an empty string" (no-color.org).
        color: !cli.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    match cli.command {
        None => serve(cfg, true, Some(console)),
        Some(Command::Serve {
            listen,
            console: with_console,
        }) => {
            if let Some(l) = listen {
                cfg.listen = l;
            }
            serve(cfg, demo, with_console.then_some(console))
        }
        Some(Command::Console { url, token_file }) => remote_console(&url, &token_file, console),
        Some(Command::Token(t)) => token(&cfg, t),
        Some(Command::Backup { out }) => {
            if out.exists() {
                bail!("{} exists; choose a new file", out.display());
            }
            let db = existing_db(&cfg)?;
            let busy = std::time::Duration::from_millis(cfg.store.busy_timeout_ms);
            boxoffice::store::backup_file(&db, &out, busy).context("backup")?;
            eprintln!("backup written to {}", out.display());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Command::Check { json }) => {
            let db = existing_db(&cfg)?;
            let busy = std::time::Duration::from_millis(cfg.store.busy_timeout_ms);
            let report = boxoffice::store::check_file(&db, busy)
                .with_context(|| format!("checking {}", db.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("integrity: {}", report.integrity);
                println!(
                    "events: {}, registrations: {}",
                    report.events, report.registrations
                );
                for v in &report.violations {
                    println!("VIOLATION {v}");
                }
                println!("{}", if report.ok() { "ok" } else { "FAILED" });
            }
            Ok(if report.ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
    }
}

fn data_dir(cfg: &Config) -> anyhow::Result<PathBuf> {
    if let Some(d) = &cfg.data_dir {
        return Ok(d.clone());
    }
    let dirs = directories::ProjectDirs::from("", "", "boxoffice")
        .context("no home directory to put the data in; pass --data-dir")?;
    Ok(dirs.data_dir().to_path_buf())
}

/// The database file of an existing data dir (commands other than serve never create one), once
/// the config is valid.
fn existing_db(cfg: &Config) -> anyhow::Result<PathBuf> {
    cfg.validate()?;
    let db = data_dir(cfg)?.join(DB_FILE);
    if !db.exists() {
        bail!("no database at {}", db.display());
    }
    Ok(db)
}

/// Opens the database of an existing data dir, upgrading an older file (for the commands that write).
fn open_existing(cfg: &Config) -> anyhow::Result<App> {
    let db = existing_db(cfg)?;
    App::open(&db, cfg.app_options()).with_context(|| format!("opening {}", db.display()))
}

fn create_dir_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn token(cfg: &Config, cmd: TokenCommand) -> anyhow::Result<std::process::ExitCode> {
    let app = open_existing(cfg)?;
    let actor = Actor::local("cli");
    match cmd {
        TokenCommand::Create { role, name } => {
            let t = app.create_token(&actor, role, &name)?;
            println!("{}", t.secret);
        }
        TokenCommand::List => {
            println!(
                "{:<36}  {:<24}  {:<8}  {:<24}  revoked",
                "id", "name", "role", "created"
            );
            for t in app.list_tokens()? {
                let revoked = t
                    .revoked_at
                    .map(|r| r.to_rfc3339())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<36}  {:<24}  {:<8}  {:<24}  {revoked}",
                    t.id.to_string(),
                    t.name,
                    t.role.as_str(),
                    t.created_at.to_rfc3339()
                );
            }
        }
        TokenCommand::Revoke { name_or_id } => {
            let t = app.revoke_token(&actor, &name_or_id)?;
            eprintln!("revoked token {} ({})", t.name, t.role);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// On the first start (no token was ever made), creates an admin token and writes it to `admin.token`,
/// readable by the owner only.
fn ensure_admin_token(app: &App, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    // Only a database that has never had a token gets one: revoking every token later must not
    // quietly mint a new admin.
    if !app.list_tokens()?.is_empty() {
        return Ok(path);
    }

    // The secret reaches its file (synced, owner-only) before the token exists: if the file cannot
    // be written, no token is made and the next start tries again, where the other order left an
    // admin whose secret nobody had.
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let secret = boxoffice::app::new_token_secret();
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        // `mode` applies only to a file it creates; one left there before may be readable by others.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(f, "{secret}")?;
        f.sync_all()
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    if let Err(e) =
        app.create_token_with_secret(&Actor::local("first-start"), Role::Admin, "admin", secret)
    {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    Ok(path)
}

const LOG_FILE: &str = "boxoffice.log";
const LOCK_FILE: &str = "serve.lock";

/// One box serves a data dir: a second `serve` on it would run a second writer, outbox processor and
/// offer timer on the same file. The lock (`flock` on `serve.lock`) is held until the process ends,
/// however it ends, so a crash never leaves a stale lock behind. The other commands (`token`,
/// `backup`, `check`) work beside a serving box and take no lock.
fn hold_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another boxoffice is already serving {} (it holds {}); stop it first",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Serves the API; with `console` (and a terminal on standard output) also shows the operator
/// console in this process, which then owns the terminal: logs go to `boxoffice.log` in the data
/// dir, and quitting the console stops the box the way SIGTERM does.
fn serve(
    cfg: Config,
    demo: bool,
    console: Option<tui::Options>,
) -> anyhow::Result<std::process::ExitCode> {
    cfg.validate()?;
    let dir = data_dir(&cfg)?;
    create_dir_private(&dir)?;
    let _serving = hold_data_dir(&dir)?;
    let console = console.filter(|_| std::io::stdout().is_terminal());
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log).context("log filter")?;
    let log_path = dir.join(LOG_FILE);
    if console.is_some() {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    } else {
        // Colours only for a person at a terminal; a file or the journal gets plain text.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
    }

    tracing::info!(version = VERSION, "starting");
    let app =
        Arc::new(App::open(&dir.join(DB_FILE), cfg.app_options()).context("opening the database")?);
    let token_file = ensure_admin_token(&app, &dir)?;
    if demo && app.is_empty()? {
        let n = boxoffice::demo::load(&app)?;
        eprintln!("loaded demo data: {n} events");
    }

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all()
        .max_blocking_threads(cfg.http.blocking_threads)
        .thread_name("boxoffice-io");
    if cfg.http.worker_threads > 0 {
        rt.worker_threads(cfg.http.worker_threads);
    }
    let rt = rt.build().context("starting the runtime")?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(cfg.listen))
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("boxoffice serving on http://{addr}");
    if addr.ip().is_unspecified() {
        eprintln!(
            "listening on every interface; answering only for the hosts {} (http.allowed_hosts)",
            cfg.http.allowed_hosts.join(", ")
        );
    }
    eprintln!("data dir: {}", dir.display());
    eprintln!("admin token: {}", token_file.display());
    // Taken over before the console takes the terminal: a SIGTERM that came before the server first
    // polled its shutdown future would otherwise kill the process the default way, the terminal left
    // in the console's screen.
    let signals = {
        let _runtime = rt.enter();
        shutdown_signal()
    };

    let rt = match console {
        None => {
            rt.block_on(run_server(app.clone(), listener, &cfg, signals))?;
            rt
        }
        Some(opts) => {
            eprintln!("console: logs go to {}", log_path.display());
            tracing::info!(%addr, "serving, with the console on this terminal");
            let (console, handle) = tui::Console::new(opts);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            // SIGTERM (or the console's quit) stops the server; SIGTERM also ends the console, which
            // restores the terminal before the process exits.
            let shutdown = async move {
                tokio::select! {
                    _ = signals => handle.quit(),
                    _ = stopped => {}
                }
            };
            let server_app = app.clone();
            let server = std::thread::Builder::new()
                .name("boxoffice-server".into())
                .spawn(move || {
                    let r = rt.block_on(run_server(server_app, listener, &cfg, shutdown));
                    (rt, r)
                })
                .context("starting the server thread")?;
            let shown = console.run(boxoffice::console::Local::local(app.clone()));
            let _ = stop.send(());
            let (rt, served) = server
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
            shown.context("console")?;
            served?;
            rt
        }
    };
    // Every in-flight request has been answered; commit anything still queued, then stop.
    app.shutdown();
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    eprintln!("boxoffice stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

/// The serving box: the API, the outbox processor, the offer timer and maintenance, until `shutdown`.
async fn run_server(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    cfg: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let maintenance = tokio::spawn({
        let app = app.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tick.tick().await;
                let app = app.clone();
                match tokio::task::spawn_blocking(move || app.prune_idempotency()).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "pruning idempotency keys failed"),
                    Err(e) => tracing::warn!(error = %e, "pruning idempotency keys panicked"),
                    Ok(Ok(_)) => {}
                }
            }
        }
    });
    let offer_timer = boxoffice::app::spawn_offer_timer(app.clone());
    // The outbox processor: woken by commits that record domain events, idle otherwise.
    let outbox = if cfg.outbox.enabled {
        let processor = boxoffice::outbox::Processor::with_http(app.clone())
            .context("starting the outbox processor")?;
        Some(boxoffice::outbox::spawn(processor))
    } else {
        None
    };
    // The address the box listens on is a host it answers for, besides `http.allowed_hosts`.
    let mut http = cfg.http.clone();
    boxoffice::http::allow_listen_address(&mut http, listener.local_addr()?);
    let router = boxoffice::http::router(app.clone(), &http);
    boxoffice::http::serve(listener, app.clone(), router, &cfg.http, shutdown).await?;
    maintenance.abort();
    offer_timer.abort();
    // Deliveries in flight get to record their outcome; anything cut off is sent again next start.
    if let Some(outbox) = outbox {
        let grace = std::time::Duration::from_millis(cfg.outbox.timeout_ms + 1000);
        outbox.shutdown(grace).await;
    }
    Ok(())
}

/// `boxoffice console --url URL --token-file FILE`: the console of a box running elsewhere.
fn remote_console(
    url: &str,
    token_file: &Path,
    opts: tui::Options,
) -> anyhow::Result<std::process::ExitCode> {
    if !std::io::stdout().is_terminal() {
        bail!("the console needs a terminal on standard output");
    }
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading {}", token_file.display()))?;
    let backend = boxoffice::console::Remote::remote(url, token.trim())?;
    let (console, handle) = tui::Console::new(opts);
    // SIGTERM, SIGHUP (the terminal went away) and SIGINT end the console, terminal restored.
    std::thread::Builder::new()
        .name("console-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            });
            handle.quit();
        })
        .context("starting the signal thread")?;
    console.run(backend).context("console")?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Takes over SIGTERM and SIGINT at once (inside the runtime's context) and resolves on the first of
/// them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn first(s: std::io::Result<Signal>) {
        match s {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    }
    let term = first(signal(SignalKind::terminate()));
    let int = first(signal(SignalKind::interrupt()));
    async move {
        tokio::select! {
            _ = term => {},
            _ = int => {},
        }
        tracing::info!("shutting down: draining in-flight requests");
    }
}

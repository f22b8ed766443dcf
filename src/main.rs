use bleepless::app::roles::{hand_over, HandedBy};
use bleepless::app::App;
use bleepless::clock::{Clock, SystemClock};
use bleepless::config::{Config, LogFormat, Overrides};
use bleepless::error::AppError;
use bleepless::store::audit::{Action, Actor, Entry};
use bleepless::store::{directory, DbConnection, Store};
use bleepless::{demo, Application};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
#[path = "main/rota.rs"]
mod rota_cli;
use rota_cli::{rota, RotaCmd};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc for Rust and, through its `override` feature, for SQLite's own C allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bleepless: clinical tasks instead of bleeps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    bind: Option<String>,
    /// sqlite://PATH, a file path, or postgres://... (default sqlite://bleepless.db).
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Fill an empty database with a demo hospital before serving.
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Check the configuration and print it as it takes effect (secrets hidden), then exit;
    /// a wrong setting exits non-zero with one line naming it.
    CheckConfig,
    /// Fill an empty database with a demo hospital and print the demo tokens.
    Demo,
    /// Print the JSON API's OpenAPI 3.1 document (as served at /api/v1/openapi.json) and
    /// exit; needs no configuration or database.
    Openapi,
    /// Manage staff.
    #[command(subcommand)]
    Staff(StaffCmd),
    /// Manage on-call roles ("bleeps") and who holds them.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Manage wards.
    #[command(subcommand)]
    Ward(WardCmd),
    /// Plan the rota: import it, add shifts and patterns, see the gaps.
    #[command(subcommand)]
    Rota(RotaCmd),
}

/// National identifiers, used in the patient record instead of our staff ids.
#[derive(clap::Args)]
struct NationalIdArgs {
    /// General Medical Council reference number (7 digits).
    #[arg(long, value_name = "NUMBER")]
    gmc: Option<String>,
    /// Nursing and Midwifery Council PIN, e.g. 12A3456B.
    #[arg(long, value_name = "PIN")]
    nmc: Option<String>,
    /// Spine Directory Service user id (12 digits, the smartcard's).
    #[arg(long, value_name = "ID")]
    sds: Option<String>,
}

impl NationalIdArgs {
    fn parse(&self) -> Result<directory::NationalIds, String> {
        directory::NationalIds::parse(
            self.gmc.as_deref(),
            self.nmc.as_deref(),
            self.sds.as_deref(),
        )
        .map_err(fail)
    }
}

#[derive(Subcommand)]
enum StaffCmd {
    /// Add a member of staff; prints their API token alone on the last line.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Comma-separated: coordinator, clinician, bed_manager, admin.
        #[arg(long)]
        roles: String,
        #[command(flatten)]
        national: NationalIdArgs,
    },
    /// Set a member of staff's national identifiers (those given; the others are kept).
    Identify {
        /// Staff id, email or exact name.
        staff: String,
        #[command(flatten)]
        national: NationalIdArgs,
    },
    /// Set the mobile number text messages go to (a UK mobile such as 07700 900123, or an
    /// international number starting with +), or remove it with --remove.
    Mobile {
        /// Staff id, email or exact name.
        staff: String,
        number: Option<String>,
        #[arg(long, conflicts_with = "number")]
        remove: bool,
    },
    /// List staff.
    List,
    /// Set the password a member of staff signs in to the pages with, read from standard
    /// input (the first line), e.g. `echo "$PW" | bleepless staff password amy@...`.
    Password {
        /// Staff id, email or exact name.
        staff: String,
    },
    /// Replace a member of staff's API token; prints the new one alone on the last line.
    Token {
        /// Staff id, email or exact name.
        staff: String,
    },
    /// Grant a permission (coordinator, clinician, bed_manager or admin), e.g. to someone
    /// whose record was made, with none, on their first sign-in through the identity provider.
    Grant {
        /// Staff id, email or exact name.
        staff: String,
        permission: String,
    },
    /// Deactivate a leaver: their sessions, API token, push devices and bleeps end at once.
    Deactivate {
        /// Staff id, email or exact name.
        staff: String,
    },
    /// Show the audit log (newest first): staff, bleeps, passwords, tokens, sign-ins.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum RoleCmd {
    /// Add an on-call role, e.g. "Medicine FY1 night".
    Add { name: String },
    /// List on-call roles and who holds them.
    List,
    /// Set the role a role escalates to when nobody acknowledges (the chain ends at the
    /// site/bed manager role).
    Escalate {
        /// Role id or exact name.
        role: String,
        /// The next role, id or exact name.
        #[arg(long, conflicts_with = "none")]
        to: Option<String>,
        /// End the chain at this role.
        #[arg(long)]
        none: bool,
    },
    /// List a member of staff as one who may hold the role (take it, be handed it, be on
    /// its rota).
    Allow {
        /// Role id or exact name.
        role: String,
        /// Staff id, email or exact name.
        #[arg(long)]
        staff: String,
    },
    /// Give the bleep to a member of staff (recorded in the rota).
    HandOver {
        /// Role id or exact name.
        role: String,
        /// Staff id, email or exact name.
        #[arg(long)]
        to: String,
        /// Keep the current holders: the role is then held by several people at once.
        #[arg(long)]
        share: bool,
    },
}

#[derive(Subcommand)]
enum WardCmd {
    /// Add a ward.
    Add {
        name: String,
        /// The ODS code of the site the ward is on, e.g. RJ122.
        #[arg(long, value_name = "CODE")]
        ods: Option<String>,
    },
    /// List wards.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Cmd::Openapi)) {
        println!("{}", bleepless::web::api::openapi_json());
        return ExitCode::SUCCESS;
    }
    let overrides = Overrides {
        config_file: cli.config.clone(),
        bind: cli.bind.clone(),
        database_url: cli.database.clone(),
    };
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bleepless: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Logging starts once the configuration says in which format.
    let directives = std::env::var("RUST_LOG").ok();
    let json = config.log_format == LogFormat::Json;
    if let Err(e) = bleepless::telemetry::init_as(directives.as_deref(), std::io::stderr, json) {
        eprintln!("bleepless: cannot start logging: {e}");
    }
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, even when a driver's message spans several.
            let line: Vec<&str> = e.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("bleepless: {}", line.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn open(config: &Config) -> Result<Store, String> {
    Store::open(&config.database, config.pool_size)
}

fn fail(e: AppError) -> String {
    e.public_message()
}

/// Records an operator's change in the audit log, in the change's transaction.
fn audit(
    c: &mut DbConnection,
    action: Action,
    subject: &str,
    detail: serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AppError> {
    let entry = Entry {
        actor: Actor::CommandLine,
        action,
        subject: Some(subject),
        detail,
        client: None,
    };
    bleepless::store::audit::record(c, entry, now)
}

fn run(cli: Cli, config: Config) -> Result<(), String> {
    let now = SystemClock.now();
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => serve(config, cli.demo),
        Cmd::CheckConfig => {
            println!("{}", config.describe());
            println!("\n# the configuration is valid");
            Ok(())
        }
        Cmd::Migrate => {
            open(&config)?;
            println!("database {} is up to date", config.database.redacted());
            Ok(())
        }
        Cmd::Openapi => {
            println!("{}", bleepless::web::api::openapi_json());
            Ok(())
        }
        Cmd::Demo => {
            let store = open(&config)?;
            print_demo(store.write_now(|c| demo::fill(c, now)).map_err(fail)?);
            Ok(())
        }
        Cmd::Staff(cmd) => staff(cmd, &config, now),
        Cmd::Role(cmd) => role(cmd, &config, now),
        Cmd::Ward(cmd) => ward(cmd, &config, now),
        Cmd::Rota(cmd) => rota(cmd, &config),
    }
}

/// `bleepless staff …`
fn staff(cmd: StaffCmd, config: &Config, now: DateTime<Utc>) -> Result<(), String> {
    let store = open(config)?;
    match cmd {
        StaffCmd::Add {
            name,
            email,
            roles,
            national,
        } => {
            let ids = national.parse()?;
            let (s, token) = store
                .write_now(|c| {
                    let (s, token) = directory::add_staff(c, &name, email.as_deref(), &roles, now)?;
                    let detail = json!({ "name": s.name, "roles": roles });
                    audit(c, Action::StaffAdded, &s.id, detail, now)?;
                    directory::set_national_ids(c, &s.id, &ids)?;
                    Ok((s, token))
                })
                .map_err(fail)?;
            println!("added {} ({}) id {}", s.name, roles, s.id);
            println!("API token (shown once; keep it secret):");
            println!("{token}");
        }
        StaffCmd::Identify { staff, national } => {
            let ids = national.parse()?;
            if ids == directory::NationalIds::default() {
                return Err("give --gmc, --nmc or --sds".into());
            }
            let s = store
                .write_now(|c| {
                    let s = directory::find_staff(c, &staff)?;
                    directory::set_national_ids(c, &s.id, &ids)?;
                    Ok(s)
                })
                .map_err(fail)?;
            println!("national identifiers set for {}", s.name);
        }
        StaffCmd::Mobile {
            staff,
            number,
            remove,
        } => {
            let mobile = match (number, remove) {
                (Some(n), false) => Some(bleepless::domain::phone::parse_mobile(&n)?),
                (None, true) => None,
                _ => return Err("give a mobile number, or --remove".into()),
            };
            let shown = mobile.clone();
            let s = store
                .write_now(|c| {
                    let s = directory::find_staff(c, &staff)?;
                    bleepless::store::notifications::set_mobile(c, &s.id, mobile.as_deref())?;
                    Ok(s)
                })
                .map_err(fail)?;
            match shown {
                Some(m) => println!("text messages for {} go to {m}", s.name),
                None => println!("{} has no mobile number now: no text messages", s.name),
            }
        }
        StaffCmd::List => {
            for s in store.write_now(directory::list_staff).map_err(fail)? {
                let roles: Vec<&str> = s.roles.iter().map(|r| r.code()).collect();
                println!(
                    "{}\t{}\t{}\t{}{}",
                    s.id,
                    s.name,
                    s.email.as_deref().unwrap_or("-"),
                    roles.join(","),
                    if s.active { "" } else { "\tinactive" }
                );
            }
        }
        StaffCmd::Password { staff } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
            let password = line.trim_end_matches(['\r', '\n']).to_string();
            let s = store
                .write_now(|c| {
                    let s = directory::find_staff(c, &staff)?;
                    bleepless::store::sessions::set_password(c, &s.id, &password)?;
                    audit(c, Action::PasswordSet, &s.id, json!({}), now)?;
                    Ok(s)
                })
                .map_err(fail)?;
            println!("password set for {}; their sessions have ended", s.name);
        }
        StaffCmd::Token { staff } => {
            let (s, token) = store
                .write_now(|c| {
                    let s = directory::find_staff(c, &staff)?;
                    let t = directory::reissue_token(c, &s.id)?;
                    audit(c, Action::TokenReissued, &s.id, json!({}), now)?;
                    Ok((s, t))
                })
                .map_err(fail)?;
            println!(
                "new API token for {} (the old one no longer works):",
                s.name
            );
            println!("{token}");
        }
        StaffCmd::Grant { staff, permission } => grant(&store, &staff, &permission, now)?,
        StaffCmd::Deactivate { staff } => deactivate(store, config, &staff)?,
        StaffCmd::Audit { limit } => print_audit(&store, limit)?,
    }
    Ok(())
}

/// `bleepless staff deactivate`: a leaver's sessions, token, devices and bleeps end at once.
fn deactivate(store: Store, config: &Config, staff: &str) -> Result<(), String> {
    let app = App::new(store, Arc::new(SystemClock), config.policy.clone());
    let done = app
        .run_now(|c, ctx| {
            let s = directory::find_staff(c, staff)?;
            bleepless::app::staff::deactivate(c, ctx, &s.id, Actor::CommandLine, None)
        })
        .map_err(fail)?;
    println!(
        "deactivated {}: {} sessions ended, API token revoked, {} devices removed",
        done.staff.name, done.sessions_ended, done.devices_removed
    );
    if !done.bleeps_released.is_empty() {
        println!(
            "they no longer hold: {} (hand these bleeps over)",
            done.bleeps_released.join(", ")
        );
    }
    Ok(())
}

/// `bleepless staff audit`: the audit log, newest first.
fn print_audit(store: &Store, limit: i64) -> Result<(), String> {
    if !(1..=10_000).contains(&limit) {
        return Err(format!("--limit {limit}: give 1 to 10000"));
    }
    let entries = store
        .write_now(|c| bleepless::store::audit::list(c, limit, None))
        .map_err(fail)?;
    for e in entries {
        let who = e
            .actor
            .map(|p| format!("{} ({})", p.name, p.id))
            .unwrap_or_else(|| "-".into());
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.action,
            who,
            e.subject.unwrap_or_default(),
            e.client.unwrap_or_default(),
            e.detail
        );
    }
    Ok(())
}

/// `bleepless role …`
fn role(cmd: RoleCmd, config: &Config, now: DateTime<Utc>) -> Result<(), String> {
    let store = open(config)?;
    match cmd {
        RoleCmd::Add { name } => {
            let r = store
                .write_now(|c| {
                    let r = directory::add_role(c, &name, now)?;
                    audit(c, Action::RoleAdded, &r.id, json!({ "name": r.name }), now)?;
                    Ok(r)
                })
                .map_err(fail)?;
            println!("added on-call role {} id {}", r.name, r.id);
        }
        RoleCmd::List => {
            let rows = store
                .write_now(|c| {
                    let mut rows = Vec::new();
                    for r in directory::list_roles(c)? {
                        let holders = directory::current_holders(c, &r.id)?;
                        let refs: Vec<&str> = holders.iter().map(String::as_str).collect();
                        let names = directory::staff_names(c, &refs)?;
                        let held: Vec<String> = holders
                            .iter()
                            .filter_map(|h| names.get(h).cloned())
                            .collect();
                        rows.push((r, held));
                    }
                    Ok(rows)
                })
                .map_err(fail)?;
            let names: std::collections::HashMap<String, String> = rows
                .iter()
                .map(|(r, _)| (r.id.clone(), r.name.clone()))
                .collect();
            for (r, held) in &rows {
                let held = if held.is_empty() {
                    "(no one holds this bleep)".to_string()
                } else {
                    held.join(", ")
                };
                let next = r
                    .escalates_to
                    .as_ref()
                    .and_then(|n| names.get(n))
                    .map(|n| format!("\tescalates to {n}"))
                    .unwrap_or_default();
                println!("{}\t{}\t{}{}", r.id, r.name, held, next);
            }
        }
        RoleCmd::Escalate { role, to, none } => {
            if to.is_none() && !none {
                return Err("give --to NEXT_ROLE, or --none to end the chain".into());
            }
            let (r, next) = store
                .write_now(|c| {
                    let find = |c: &mut _, key: &str| {
                        directory::find_role(c, key)?.ok_or_else(|| {
                            AppError::NotFound(format!(
                                "no on-call role has the id or name {key:?}"
                            ))
                        })
                    };
                    let r = find(c, &role)?;
                    let next = match &to {
                        Some(n) => Some(find(c, n)?),
                        None => None,
                    };
                    directory::set_escalation(c, &r, next.as_ref())?;
                    let detail = json!({ "role": r.name, "to": next.as_ref().map(|n| &n.name) });
                    audit(c, Action::EscalationSet, &r.id, detail, now)?;
                    Ok((r, next))
                })
                .map_err(fail)?;
            match next {
                Some(n) => println!("{} now escalates to {}", r.name, n.name),
                None => println!("{} now ends its escalation chain", r.name),
            }
        }
        RoleCmd::Allow { role, staff } => {
            let (r, s) = store
                .write_now(|c| {
                    let r = find_role(c, &role)?;
                    let s = directory::find_staff(c, &staff)?;
                    s.may_hold_bleep().map_err(AppError::Unprocessable)?;
                    bleepless::store::rota::allow(c, &r.id, &s.id, now)?;
                    let detail = json!({ "role": r.name, "staff": s.id, "allowed": true });
                    audit(c, Action::RoleAllowed, &r.id, detail, now)?;
                    Ok((r, s))
                })
                .map_err(fail)?;
            println!("{} may hold {}", s.name, r.name);
        }
        RoleCmd::HandOver { role, to, share } => {
            let app = App::new(store, Arc::new(SystemClock), config.policy.clone());
            let (r, s) = app
                .run_now(|c, ctx| {
                    let r = directory::find_role(c, &role)?.ok_or_else(|| {
                        AppError::NotFound(format!("no on-call role has the id or name {role:?}"))
                    })?;
                    let s = directory::find_staff(c, &to)?;
                    hand_over(c, ctx, &r, &s, share, HandedBy::Operator)?;
                    let detail = json!({ "role": r.name, "to": s.id, "share": share });
                    audit(c, Action::HandedOver, &r.id, detail, ctx.now)?;
                    Ok((r, s))
                })
                .map_err(fail)?;
            let how = if share { "also holds" } else { "now holds" };
            println!("{} {how} {}", s.name, r.name);
        }
    }
    Ok(())
}

fn find_role(c: &mut DbConnection, key: &str) -> Result<directory::Role, AppError> {
    directory::find_role(c, key)?
        .ok_or_else(|| AppError::NotFound(format!("no on-call role has the id or name {key:?}")))
}

/// `bleepless ward …`
fn ward(cmd: WardCmd, config: &Config, now: DateTime<Utc>) -> Result<(), String> {
    let store = open(config)?;
    match cmd {
        WardCmd::Add { name, ods } => {
            let ods = ods
                .as_deref()
                .map(directory::parse_ods_code)
                .transpose()
                .map_err(fail)?;
            let w = store
                .write_now(|c| {
                    let w = directory::add_ward(c, &name, now)?;
                    audit(c, Action::WardAdded, &w, json!({}), now)?;
                    if let Some(code) = &ods {
                        directory::set_ward_ods_code(c, &w, code)?;
                    }
                    Ok(w)
                })
                .map_err(fail)?;
            println!("added ward {w}");
        }
        WardCmd::List => {
            for w in store.write_now(directory::list_wards).map_err(fail)? {
                println!("{w}");
            }
        }
    }
    Ok(())
}

fn print_demo(logins: Option<(Vec<demo::DemoLogin>, String)>) {
    match logins {
        None => println!("the database already has staff; demo data was not added"),
        Some((logins, password)) => {
            println!("demo hospital added. Sign in at /login with an email below and the password {password}");
            println!("API tokens (for Authorization: Bearer ...):");
            for l in logins {
                println!("{:<26} {:<12} {:<30} {}", l.name, l.roles, l.email, l.token);
            }
        }
    }
}

fn serve(config: Config, demo_data: bool) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Database work waits for one of `pool_size` connections: threads beyond that
        // would only queue for one, switching in and out on two cores.
        .max_blocking_threads(config.pool_size as usize + 8)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let db = config.database.redacted();
        let store = open(&config)?;
        if demo_data {
            let now = clock.now();
            print_demo(store.write_now(|c| demo::fill(c, now)).map_err(fail)?);
        }
        let app = Application::build_with_store(config, clock, store)?;
        tracing::info!(addr = %app.addr, database = %db, "Bleepless is listening");
        app.run().await.map_err(|e| format!("server stopped: {e}"))
    })
}

/// `bleepless staff grant`: adds one permission to a member of staff's.
fn grant(store: &Store, staff: &str, permission: &str, now: DateTime<Utc>) -> Result<(), String> {
    let p = bleepless::domain::Permission::parse(permission.trim())?;
    let s = store
        .write_now(|c| {
            let mut s = directory::find_staff(c, staff)?;
            if !s.roles.contains(&p) {
                s.roles.push(p);
                bleepless::store::identities::set_permissions(c, &s.id, &s.roles)?;
                audit(
                    c,
                    Action::PermissionsSet,
                    &s.id,
                    json!({ "granted": p.code() }),
                    now,
                )?;
            }
            Ok(s)
        })
        .map_err(fail)?;
    let mut roles: Vec<&str> = s.roles.iter().map(|r| r.code()).collect();
    roles.sort();
    println!("{} may now: {}", s.name, roles.join(", "));
    Ok(())
}

use clap::{CommandFactory as _, FromArgMatches as _};
use portcullis::cli::{
    Args, LogFormat, PluginCommand, Subcommand, auth, conformance, inspect, password,
};
use portcullis::plan::ServerPlan;

fn main() -> std::process::ExitCode {
    let matches = Args::command().get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(Subcommand::Password(p)) = &args.command {
        return match password::run(p) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portcullis password: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if args.help_auth {
        print!("{}", auth::help_auth());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(name) = &args.help_auth_type {
        return match auth::help_auth_type(name) {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    let check_only = match &args.command {
        Some(Subcommand::CheckConfig(c)) => match c.file.clone().or_else(|| args.config.clone()) {
            Some(file) => {
                args.config = Some(file);
                true
            }
            None => {
                eprintln!("portcullis check-config: name a file, or give --config FILE");
                return std::process::ExitCode::from(2);
            }
        },
        _ => false,
    };
    // Flags over the file: the plan every command below starts from.
    let plan = match portcullis::config::load_plan(&args, &matches) {
        Ok(plan) => plan,
        Err(e) => {
            // check-config exits 1 for anything wrong in the file, as its
            // --help says; a start that cannot read its file exits 2.
            if check_only {
                eprintln!("portcullis check-config: {e}");
                return std::process::ExitCode::FAILURE;
            }
            eprintln!("portcullis: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&plan);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(Subcommand::Plugin(PluginCommand::Inspect(a))) = &args.command {
        return match runtime.block_on(inspect::inspect(&a.file)) {
            Ok(report) if a.json => {
                println!("{report:#}");
                std::process::ExitCode::SUCCESS
            }
            Ok(report) => {
                print!("{}", inspect::to_text(&report));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis plugin inspect: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(Subcommand::Plugin(PluginCommand::Test(a))) = &args.command {
        return match runtime.block_on(conformance::run(a)) {
            Ok(report) => {
                print!("{}", report.to_text());
                conformance::exit_code(&report)
            }
            Err(e) => {
                eprintln!("portcullis plugin test: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(Subcommand::Reload(r)) = &args.command {
        let Some(socket) = r
            .control_socket
            .as_ref()
            .or(plan.service.control_socket.as_ref())
        else {
            eprintln!(
                "portcullis reload: give --control-socket PATH (or the --config that sets it)"
            );
            return std::process::ExitCode::from(2);
        };
        return match runtime.block_on(portcullis::app::send_reload(socket)) {
            Ok(summary) => {
                println!("portcullis: {summary}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis reload: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if check_only {
        let file = args.config.clone().unwrap_or_default();
        return match runtime.block_on(portcullis::app::check(&plan)) {
            Ok(summary) => {
                print!("{summary}");
                println!("{}: ok", file.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portcullis check-config: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(portcullis::app::run(plan, matches)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(plan: &ServerPlan) {
    let filter = tracing_subscriber::EnvFilter::try_new(&*plan.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match *plan.log.format {
        // Text from clients and plugins cannot forge lines: every field
        // is escaped (JSON escapes by itself).
        LogFormat::Human => builder
            .fmt_fields(portcullis::logtext::EscapedFields)
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

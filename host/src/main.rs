use clap::Parser;
use portcullis::cli::{Args, LogFormat, PluginCommand, Subcommand, auth, inspect, password};

fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
    init_logging(&args);
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
    match runtime.block_on(portcullis::app::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

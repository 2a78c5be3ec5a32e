//! The rollout-gate experiment (`docs/benchmarks.md`, "Rollout gates"): rollouts of an
//! equivalent retrain under a 2× overload burst, and of candidates with +2 points of error
//! rate, 3× the service time, and divergent outputs, each repeated `--trials N` times
//! (default 20) against one server under steady load, with the plan's default thresholds.
//! The server runs pinned to one core and the clients (steady load and burst) to another, so
//! the burst really is offered at twice the server's throughput.
//! Prints every verdict with its reason and time to decision, then the table.
//!
//! `cargo bench -p ballast-deploy --bench gate_trials -- --trials 20`

#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--name N`, else the default.
    let option = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let (trials, trees) = (option("--trials", 20), option("--trees", 4000));
    // The server (and every thread it starts, which inherits the mask) on the first core, the
    // clients on the second, as `ballast demo` and the overload benchmarks place them.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let placement = match cores.as_slice() {
        [server, client, ..] => {
            core_affinity::set_for_current(*server);
            eprintln!(
                "server on core {}, clients on core {}",
                server.id, client.id
            );
            common::trials::Placement::Pinned { client: *client }
        }
        _ => {
            eprintln!("fewer than 2 cores: server and clients share the machine");
            common::trials::Placement::Shared
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let summary = rt.block_on(common::trials::run(trials, true, placement, trees));
    println!(
        "\nsteady load {:.0} req/s; {} rollouts of each kind\n",
        summary.capacity_per_s, trials
    );
    println!("{}", common::trials::table(&summary));
    if let Some(range) = common::trials::burst_range(&summary) {
        println!("{range}");
    }
    let equivalent: Vec<_> = summary
        .outcomes
        .iter()
        .filter(|o| o.kind == common::trials::Kind::Equivalent)
        .collect();
    let false_alarms = equivalent.iter().filter(|o| !o.correct()).count();
    println!(
        "false alarms: {false_alarms} of {} equivalent rollouts; detections: {} of {} faulty",
        equivalent.len(),
        summary
            .outcomes
            .iter()
            .filter(|o| o.kind != common::trials::Kind::Equivalent && o.correct())
            .count(),
        summary.outcomes.len() - equivalent.len()
    );
}

//! `demo` and the help text of every command.

mod common;

use assert_cmd::Command;
use predicates::prelude::*;

use common::Env;

#[test]
fn demo_walks_the_pipeline_and_can_run_again() {
    let env = Env::new();
    let mut c = Command::cargo_bin("crmgate").unwrap();
    c.current_dir(env.dir.path())
        .env_remove("CRMGATE_DB")
        .env("NO_COLOR", "1")
        .arg("demo");
    c.assert()
        .success()
        .stdout(predicate::str::contains("==> 1."))
        .stdout(predicate::str::contains("does not exist on contacts"))
        .stdout(predicate::str::contains("Try it yourself"))
        .stdout(predicate::str::contains("--as alice review"));
    let demo = Env {
        dir: env.dir,
        user: env.user,
    };
    std::fs::rename(demo.path("crmgate-demo.db"), demo.db()).unwrap();
    assert!(demo.count("SELECT count(*) FROM crmgate_proposals") > 0);
    assert_eq!(demo.count("SELECT count(*) FROM contacts"), 1000);
    std::fs::rename(demo.db(), demo.path("crmgate-demo.db")).unwrap();
    let mut again = Command::cargo_bin("crmgate").unwrap();
    again
        .current_dir(demo.dir.path())
        .env_remove("CRMGATE_DB")
        .arg("demo");
    again.assert().success();
}

#[test]
fn demo_will_not_overwrite_a_real_store() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let before = env.dump();
    env.cmd(&["demo"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a demo store"));
    assert_eq!(env.dump(), before);
}

#[test]
fn every_command_has_help_with_an_example_and_completions_work() {
    let env = Env::new();
    for cmd in [
        "init",
        "demo",
        "import",
        "export",
        "propose",
        "status",
        "list",
        "show",
        "policy",
        "pause",
        "resume",
        "sources",
        "approve",
        "reject",
        "audit",
        "log",
        "apply",
        "revert",
        "completions",
    ] {
        env.cmd(&[cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    for sub in ["audit verify", "audit checkpoint", "audit export"] {
        let args: Vec<&str> = sub.split(' ').chain(["--help"]).collect();
        env.cmd(&args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    for sub in ["show", "set", "check", "test"] {
        env.cmd(&["policy", sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    env.cmd(&["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("crmgate"));
    env.cmd(&["frobnicate"]).assert().code(2);
}

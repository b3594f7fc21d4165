//! The systemd unit in `contrib/` is one systemd accepts: every setting
//! known and well formed (`systemd-analyze verify`, where it is
//! installed), with the hardening it promises.

use std::process::Command;

use assert_cmd::cargo::cargo_bin;

const UNIT: &str = include_str!("../../../contrib/msgr.service");

#[test]
fn the_unit_verifies_and_is_hardened() {
    for setting in [
        "DynamicUser=yes",
        "StateDirectory=msgr",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=4096",
    ] {
        assert!(UNIT.lines().any(|line| line == setting), "{setting}");
    }
    let Ok(analyze) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!(
            "skipped systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)"
        );
        return;
    };
    assert!(analyze.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("msgr.service");
    // Verified against the binary just built, which it checks exists.
    let binary = cargo_bin("msgr");
    let text = UNIT.replace("/usr/local/bin/msgr", binary.to_str().unwrap());
    std::fs::write(&unit, text).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{stderr}");
    assert_eq!(stderr, "", "every setting is understood");
}

//! Helpers for the tests of the client commands (`cli::*`, and the
//! malicious-server tests): a client running in the
//! background whose output lines arrive with a deadline, a client run on a
//! pseudo-terminal (through util-linux `script`), an interactive session
//! driven on one as a person would (type, wait for what it shows), and
//! JSON parsing of results and errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use serde_json::Value;

use super::World;

/// How long a test waits for a background client to say or do something.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A client process running in the background.
pub struct Background {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Background {
    /// Start `command` with its stdout read line by line and its stderr
    /// collected.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("msgr starts");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line of stdout, failing the test after [`PATIENCE`].
    pub fn next_line(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no output within {PATIENCE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("stdout closed early"),
        }
    }

    /// Send `signal` (a `kill -s` name).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {signal} failed");
    }

    /// Wait for the process to exit, failing the test after [`PATIENCE`];
    /// returns its status, the stdout lines not yet taken, and its stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let status = exit_status(&mut self.child);
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let rest = self.lines.iter().collect();
        (status, rest, stderr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `child`'s exit status once it exits, killing it and failing the test if
/// it has not within [`PATIENCE`].
fn exit_status(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("msgr did not exit within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl World {
    /// `msgr` as `user` with `args`, started in the background.
    pub fn background(&self, user: &str, args: &[&str]) -> Background {
        let mut command = self.msgr_process(user);
        command.args(args);
        Background::start(command)
    }

    /// `msgr` as `user` with `args` on a pseudo-terminal, with `input`
    /// typed into it and `env` set; returns everything the terminal showed
    /// (stdout and stderr together) and whether msgr succeeded.
    pub fn on_terminal(
        &self,
        user: &str,
        args: &[&str],
        input: &str,
        env: &[(&str, &str)],
    ) -> (bool, String) {
        let mut words = vec![
            cargo_bin("msgr").display().to_string(),
            "--server".into(),
            format!("localhost:{}", self.server.port),
            "--user".into(),
            user.into(),
            "--config-dir".into(),
            self.config_dir(user).display().to_string(),
        ];
        words.extend(args.iter().map(|arg| arg.to_string()));
        let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        let mut script = std::process::Command::new("script");
        super::hermetic(&mut script);
        let mut command = assert_cmd::Command::from_std(script);
        command
            .args(["-qec", &line.join(" "), "/dev/null"])
            .env("TERM", "xterm-256color")
            .envs(env.iter().copied())
            .write_stdin(input.to_owned())
            .timeout(Duration::from_secs(60));
        let output = command.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

/// An interactive `msgr` on a pseudo-terminal (util-linux `script`
/// between it and the test's pipes): the test types lines and waits for
/// what the terminal shows, never for a fixed time.
pub struct Terminal {
    child: Child,
    keys: ChildStdin,
    screen: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// How much of the screen earlier waits have passed.
    seen: usize,
}

impl Terminal {
    /// Wait (up to [`PATIENCE`]) until the terminal shows `text` after
    /// what earlier waits found; returns what it showed up to it.
    pub fn expect(&mut self, text: &str) -> String {
        let (lock, arrived) = &*self.screen;
        let deadline = Instant::now() + PATIENCE;
        let mut screen = lock.lock().unwrap();
        loop {
            let shown = String::from_utf8_lossy(&screen[self.seen..]).into_owned();
            if let Some(at) = shown.find(text) {
                self.seen += shown[..at + text.len()].len();
                return shown[..at + text.len()].to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the terminal did not show {text:?} within {PATIENCE:?}; it shows:\n{shown}"
            );
            screen = arrived.wait_timeout(screen, left).unwrap().0;
        }
    }

    /// Type `keys` as they are (`"\x04"` is Ctrl-D, `"\x03"` Ctrl-C).
    pub fn press(&mut self, keys: &str) {
        self.keys.write_all(keys.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }

    /// Type `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.press(&format!("{line}\r"));
    }

    /// Wait (up to [`PATIENCE`]) for msgr to exit; its status and all the
    /// terminal showed.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let status = exit_status(&mut self.child);
        let screen = self.screen.0.lock().unwrap();
        (status, String::from_utf8_lossy(&screen).into_owned())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl World {
    /// `msgr` as `user` with `args` (none: the interactive session) on a
    /// pseudo-terminal, for the test to type at.
    pub fn terminal(&self, user: &str, args: &[&str]) -> Terminal {
        let mut words = vec![
            cargo_bin("msgr").display().to_string(),
            "--server".into(),
            format!("localhost:{}", self.server.port),
            "--user".into(),
            user.into(),
            "--config-dir".into(),
            self.config_dir(user).display().to_string(),
        ];
        words.extend(args.iter().map(|arg| arg.to_string()));
        let line: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        let mut script = Command::new("script");
        super::hermetic(&mut script);
        let mut child = script
            .args(["-qec", &line.join(" "), "/dev/null"])
            .env("TERM", "xterm-256color")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script starts");
        let keys = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let screen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shown = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(read @ 1..) = output.read(&mut chunk) {
                let (lock, arrived) = &*shown;
                lock.lock().unwrap().extend_from_slice(&chunk[..read]);
                arrived.notify_all();
            }
        });
        Terminal {
            child,
            keys,
            screen,
            seen: 0,
        }
    }
}

/// `word` in single quotes for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Each line of `stdout` parsed as one JSON value.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// The one JSON object of a single result.
pub fn json_object(stdout: &[u8]) -> Value {
    let mut values = json_lines(stdout);
    assert_eq!(values.len(), 1, "one object expected: {values:?}");
    values.remove(0)
}

/// The error object of a failed command in JSON mode: the last line of
/// stderr, checked to be an error whose code and status match.
pub fn json_error(output: &std::process::Output, code: &str) -> Value {
    let lines = json_lines(&output.stderr);
    let error = lines.last().expect("an error on stderr").clone();
    assert_eq!(error["level"], "error", "{error}");
    assert_eq!(error["code"], code, "{error}");
    assert_eq!(
        error["exit_status"].as_i64(),
        output.status.code().map(i64::from),
        "{error}"
    );
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        error.get("hint").is_some(),
        "hint is always present: {error}"
    );
    error
}

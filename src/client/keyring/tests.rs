//! Round trips and refusals of the keyring's files.

use super::*;
use crate::wire::crypto::test_keys;
use crate::wire::protocol::username;

fn account() -> (tempfile::TempDir, Account) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::at(&dir.path().join("cfg"));
    let account = keyring
        .create_account_dir(&username("Alice"), &"localhost:12000".parse().unwrap())
        .unwrap()
        .lock()
        .unwrap();
    (dir, account)
}

#[test]
fn looking_for_an_account_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::at(&dir.path().join("cfg"));
    let server = "localhost:12000".parse().unwrap();
    assert!(!keyring.exists().unwrap());
    assert!(
        keyring
            .account_dir(&username("Alice"), &server)
            .unwrap()
            .is_none()
    );
    assert!(
        keyring
            .registered_elsewhere(&username("Alice"), &server)
            .unwrap()
            .is_empty()
    );
    assert!(!keyring.exists().unwrap(), "the config dir was not made");
    let made = keyring
        .create_account_dir(&username("ALICE"), &"LocalHost:12000".parse().unwrap())
        .unwrap();
    let found = keyring
        .account_dir(&username("alice"), &server)
        .unwrap()
        .expect("the folder is found in any letter case");
    assert_eq!(found.dir(), made.dir());
    assert!(
        !found.dir().join("lock").exists(),
        "finding it locks nothing"
    );
}

#[test]
fn registrations_elsewhere_are_the_registered_folders_of_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::at(dir.path());
    let here: ServerAddr = "127.0.0.1:12000".parse().unwrap();
    let accounts = dir.path().join("accounts");
    for (folder, registered) in [
        ("alice@localhost:12000", true),
        ("ALICE@zebra.example:1", true),
        ("alice@127.0.0.1:12000", true),
        ("alice@half-made:1", false),
        ("alicia@other:1", true),
        ("alice@evil\u{1b}[31m:1", true),
        ("no-at-sign", true),
    ] {
        std::fs::create_dir_all(accounts.join(folder)).unwrap();
        if registered {
            std::fs::write(accounts.join(folder).join("account.toml"), "").unwrap();
        }
    }
    assert_eq!(
        keyring
            .registered_elsewhere(&username("Alice"), &here)
            .unwrap(),
        ["evil\u{1b}[31m:1", "localhost:12000", "zebra.example:1"]
    );
}

#[test]
fn identity_round_trips_with_private_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, account) = account();
    assert!(!account.has_identity());
    account.save_identity(&test_keys()[0], None).unwrap();
    let StoredKey::Plain(loaded) = account.load_identity().unwrap() else {
        panic!("an unencrypted key was saved");
    };
    assert_eq!(loaded.public_key(), test_keys()[0].public_key());
    let mode = std::fs::metadata(account.identity_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(account.dir().ends_with("accounts/alice@localhost:12000"));
}

#[test]
fn contacts_are_pinned_case_insensitively() {
    let (_dir, account) = account();
    assert!(account.contact(&username("John")).unwrap().is_none());
    let prekey = crate::wire::envelope::RecipientPrekey {
        id: 3,
        public_key: [4; 32],
    };
    account
        .pin_contact(&Contact {
            name: username("John"),
            key: test_keys()[1].public_key(),
            prekey: Some(prekey),
            previous: vec![crate::wire::protocol::Replaced {
                key: test_keys()[0].public_key(),
                at: 77,
            }],
        })
        .unwrap();
    let contact = account.contact(&username("JOHN")).unwrap().unwrap();
    assert_eq!(contact.name, "John");
    assert_eq!(contact.key, test_keys()[1].public_key());
    assert_eq!(contact.prekey, Some(prekey));
    assert_eq!(contact.previous[0].key, test_keys()[0].public_key());
    assert_eq!(contact.previous[0].at, 77);
    account
        .pin_contact(&Contact {
            name: username("carol"),
            key: test_keys()[2].public_key(),
            prekey: None,
            previous: Vec::new(),
        })
        .unwrap();
    let names: Vec<_> = account
        .all_contacts()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["carol", "John"]);
}

#[test]
fn sessions_and_seen_ids_round_trip() {
    let (_dir, account) = account();
    assert!(account.load_session().unwrap().is_none());
    let session = Session {
        token: SessionToken::new(vec![9; 32]),
        expires_at: 42,
    };
    account.save_session(&session).unwrap();
    let loaded = account.load_session().unwrap().unwrap();
    assert_eq!(loaded.token.expose(), &[9; 32]);
    assert_eq!(loaded.expires_at, 42);
    account.remove_session().unwrap();
    account.remove_session().unwrap();
    assert!(account.load_session().unwrap().is_none());

    let mut seen = account.load_seen(0).unwrap();
    seen.insert(seen_key(&username("Alice"), "0102"), 1000);
    account.save_seen(&seen).unwrap();
    let mut seen = account.load_seen(0).unwrap();
    assert!(seen.contains("alice 0102"));
    seen.insert(seen_key(&username("bob"), "03"), 2000);
    account.save_seen(&seen).unwrap();
    let seen = account.load_seen(0).unwrap();
    assert!(seen.contains("alice 0102") && seen.contains("bob 03"));
    assert!(!seen.contains("carol 04"));
    assert_eq!(seen_key(&username("ALICE"), "0102"), "alice 0102");
}

#[test]
fn seen_ids_of_expired_messages_are_pruned_in_bulk() {
    let (_dir, account) = account();
    let path = account.dir().join("seen.txt");
    // Written before send times were recorded: kept, as its age is unknown.
    std::fs::write(&path, "carol 00\n").unwrap();
    let mut seen = account.load_seen(0).unwrap();
    for id in 0..100 {
        seen.insert(seen_key(&username("Alice"), &format!("{id:04x}")), 1000);
    }
    seen.insert(seen_key(&username("Alice"), "ffff"), 5000);
    account.save_seen(&seen).unwrap();
    // None sent before the bound: nothing is rewritten.
    let few = account.load_seen(1000).unwrap();
    account.prune_seen(&few, 1000).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 102);

    let seen = account.load_seen(2000).unwrap();
    account.prune_seen(&seen, 2000).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "carol 00\nalice ffff 5000\n"
    );
    let seen = account.load_seen(2000).unwrap();
    assert!(seen.contains("carol 00") && seen.contains("alice ffff"));
    assert!(!seen.contains("alice 0000"));
}

#[test]
fn damaged_files_are_reported_not_ignored() {
    let (_dir, account) = account();
    std::fs::write(account.dir().join("contacts.toml"), "not = [toml").unwrap();
    assert!(matches!(
        account.contact(&username("John")),
        Err(KeyringError::Corrupt { .. })
    ));
}

#[test]
fn rejected_messages_round_trip_and_are_bounded() {
    let (_dir, account) = account();
    let alice = username("Alice");
    let rejected = |n: u32| {
        Rejected::new(
            "Alice",
            &format!("{n:032x}"),
            1_800_000_000_000,
            "bad signature".into(),
            vec![n as u8; 3],
        )
    };
    let first = account
        .save_rejected(&alice, &rejected(0))
        .unwrap()
        .unwrap();
    assert!(first.ends_with(format!("rejected/alice-{:032x}.json", 0)));
    // The same id again (a sender reusing it) never overwrites the first.
    let second = account
        .save_rejected(&alice, &rejected(0))
        .unwrap()
        .unwrap();
    assert_eq!(second, first, "the same contents are kept once");
    let mut other = rejected(0);
    other.envelope.0 = vec![9; 3];
    let third = account.save_rejected(&alice, &other).unwrap().unwrap();
    assert_ne!(third, first);
    let kept = account.rejected().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].1.sent_at, "2027-01-15T08:00:00.000Z");
    account.remove_rejected(&third).unwrap();
    // Filled up (quickly, without the syncs of real saves).
    for n in 1..MOST_REJECTED {
        let path = first.with_file_name(format!("alice-{n:032x}.json"));
        std::fs::write(path, std::fs::read(&first).unwrap()).unwrap();
    }
    assert_eq!(
        account.save_rejected(&alice, &rejected(5000)).unwrap(),
        None
    );
    assert_eq!(account.rejected().unwrap().len(), MOST_REJECTED);
    // Fewer but larger files are bounded by their bytes.
    for n in 1..MOST_REJECTED {
        let path = first.with_file_name(format!("alice-{n:032x}.json"));
        std::fs::remove_file(path).unwrap();
    }
    let large = first.with_file_name("alice-large.json");
    let file = std::fs::File::create(&large).unwrap();
    file.set_len(MOST_REJECTED_BYTES - 100).unwrap();
    assert_eq!(
        account.save_rejected(&alice, &rejected(7000)).unwrap(),
        None
    );
    std::fs::remove_file(&large).unwrap();
    assert!(
        account
            .save_rejected(&alice, &rejected(7000))
            .unwrap()
            .is_some()
    );
}

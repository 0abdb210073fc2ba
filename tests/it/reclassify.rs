//! `treatywatch reclassify` after a rule edit, through the binary: items
//! polled from a loopback feed are read again with the edited rules; what
//! they no longer say is retracted, what they now say is added, the status
//! table follows, `replay` agrees, and nothing of it is mailed as news.

use serde_json::Value;

use crate::feed_server::Reply;
use crate::polling::{PollEnv, RSS};

/// Two fresh items: the shipped rules read Latvia's notification in the
/// first and nothing in the second.
fn feed(now: chrono::DateTime<chrono::Utc>) -> String {
    let date = now.to_rfc2822();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example.org/</link><description>news</description>
  <item>
    <title>Latvia deposits instrument of withdrawal from the Ottawa Convention</title>
    <guid>https://wire.example.org/lva-notice</guid>
    <link>https://wire.example.org/lva-notice</link>
    <pubDate>{date}</pubDate>
    <description>Riga handed the document to the United Nations.</description>
  </item>
  <item>
    <title>Polish government green-lights exit from the Ottawa Convention</title>
    <guid>https://wire.example.org/pol-exit</guid>
    <link>https://wire.example.org/pol-exit</link>
    <pubDate>{date}</pubDate>
    <description>The cabinet met on Tuesday.</description>
  </item>
</channel></rss>"#
    )
}

/// A cue the shipped rules lack: it reads the second item.
const GREEN_LIGHT: &str = r#"
[[cue]]
id = "announced.green-light"
action = "withdrawal_announced"
phrases = ["green-lights exit from"]
"#;

struct Env {
    env: PollEnv,
    shipped_rules: String,
}

impl Env {
    /// A config with one feed serving `feed()` and a desk that is mailed
    /// (as .eml files) every change of the tracked states.
    fn new() -> Env {
        let env = PollEnv::new(&[]);
        env.server
            .set("/wire.xml", Reply::feed(feed(chrono::Utc::now()), RSS));
        let config = format!(
            "[tracking]\nstates = [\"UKR\", \"POL\", \"LVA\"]\ntreaties = [\"ottawa\"]\n\n\
             [notify]\nto = [\"desk@example.org\"]\nfolder = \"digests\"\n\n\
             [fetch]\ntimeout = \"2s\"\nconnect_timeout = \"2s\"\n\n\
             [[feed]]\nid = \"wire\"\nurl = \"{}\"\ninterval = \"15m\"\n",
            env.server.url("/wire.xml")
        );
        std::fs::write(env.config_path(), config).expect("feeds.toml");
        let shipped_rules =
            std::fs::read_to_string(env.dir.path().join("rules.toml")).expect("rules");
        Env { env, shipped_rules }
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}):\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The shipped rules with the cue `id` taken out and `extra` appended.
    /// The shipped rules without the cues `without`, plus `extra`.
    fn edit_rules(&self, without: &[&str], extra: &str) {
        let mut rules = self.shipped_rules.clone();
        for id in without {
            let start = rules
                .find(&format!("[[cue]]\nid = \"{id}\""))
                .unwrap_or_else(|| panic!("no cue {id}"));
            let end = start + 1 + rules[start + 1..].find("\n[[").expect("a table follows") + 1;
            rules.replace_range(start..end, "");
        }
        rules.push_str(extra);
        std::fs::write(self.env.dir.path().join("rules.toml"), rules).expect("rules");
    }

    fn restore_rules(&self) {
        std::fs::write(self.env.dir.path().join("rules.toml"), &self.shipped_rules).expect("rules");
    }

    fn events(&self) -> Vec<Value> {
        self.ok(&["events", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    fn status(&self, state: &str) -> String {
        self.ok(&["status", "--json"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|v| v["state"] == state && v["treaty"] == "ottawa")
            .unwrap_or_else(|| panic!("no row for {state}"))["status"]
            .as_str()
            .expect("status")
            .to_string()
    }

    /// The digests written so far.
    fn mailed(&self) -> usize {
        std::fs::read_dir(self.env.dir.path().join("digests"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn rules_version(&self) -> String {
        let check = self.ok(&["check"]);
        check
            .split("rules version ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no version in {check}"))
            .to_string()
    }

    /// `replay` finds the table equal to the log, and nothing waits to be mailed.
    fn consistent_and_quiet(&self) {
        assert!(self.ok(&["replay"]).contains("identical"));
        assert!(
            self.ok(&["digest", "--preview"])
                .contains("nothing pending"),
            "nothing reclassify did is waiting to be mailed"
        );
    }
}

fn detections(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["kind"] == "detection").collect()
}

#[test]
fn a_rule_edit_retracts_and_adds_and_mails_nothing() {
    let env = Env::new();
    env.ok(&["poll"]);
    assert_eq!(env.status("LVA"), "withdrawal_notified");
    assert_eq!(env.status("POL"), "unknown");
    assert_eq!(env.mailed(), 1, "the fresh notification was news");
    let shipped = env.rules_version();
    let first = env.events();
    assert_eq!(detections(&first).len(), 1);
    assert_eq!(detections(&first)[0]["rules_version"], shipped.as_str());

    // The cues that read a deposit are taken out, a new cue put in.
    env.edit_rules(&["notified.deposit", "frame.notify"], GREEN_LIGHT);
    let edited = env.rules_version();
    assert_ne!(edited, shipped);
    let out = env.ok(&["reclassify"]);
    assert!(
        out.contains("2 items re-read, 1 detection added, 1 retracted, 2 status changes"),
        "{out}"
    );
    assert!(
        out.contains("LVA ottawa: withdrawal_notified → unknown"),
        "{out}"
    );
    assert!(
        out.contains("POL ottawa: unknown → withdrawal_announced"),
        "{out}"
    );
    assert!(out.contains("none of these changes was emailed"), "{out}");
    assert_eq!(env.status("LVA"), "unknown");
    assert_eq!(env.status("POL"), "withdrawal_announced");
    env.consistent_and_quiet();

    let after = env.events();
    let new: Vec<&Value> = after[first.len()..].iter().collect();
    let retraction = new
        .iter()
        .find(|e| e["kind"] == "retracted")
        .expect("a retraction");
    assert_eq!(retraction["target_seq"], detections(&first)[0]["seq"]);
    assert_eq!(retraction["rules_version"], edited.as_str());
    assert!(retraction["note"].as_str().expect("note").contains(&edited));
    let added = new
        .iter()
        .find(|e| e["kind"] == "detection")
        .expect("an added detection");
    assert_eq!(
        (&added["state"], &added["rule"], &added["rules_version"]),
        (
            &"POL".into(),
            &"announced.green-light".into(),
            &edited.as_str().into()
        )
    );
    for change in new.iter().filter(|e| e["kind"] == "status_changed") {
        assert_eq!(change["backfill"], true, "{change}");
    }

    // Unchanged rules: nothing to do, however often it runs.
    let again = env.ok(&["reclassify"]);
    assert!(again.contains("nothing appended"), "{again}");
    assert_eq!(env.events().len(), after.len());

    // A poll later mails nothing either: there is no news.
    env.ok(&["poll"]);
    assert_eq!(env.mailed(), 1);

    // The edit undone: the retracted detection returns, the added one goes.
    env.restore_rules();
    let out = env.ok(&["reclassify"]);
    assert!(out.contains("1 detection added, 1 retracted"), "{out}");
    assert!(
        out.contains("LVA ottawa: unknown → withdrawal_notified"),
        "{out}"
    );
    assert_eq!(env.status("LVA"), "withdrawal_notified");
    assert_eq!(env.status("POL"), "unknown");
    env.consistent_and_quiet();
    let revived = env
        .events()
        .into_iter()
        .rfind(|e| e["kind"] == "detection" && e["state"] == "LVA")
        .expect("LVA detection");
    assert_eq!(revived["revives"], retraction["seq"]);
    assert!(env.ok(&["reclassify"]).contains("nothing appended"));
    assert_eq!(env.mailed(), 1);
}

#[test]
fn an_analysts_retraction_stands() {
    let env = Env::new();
    env.ok(&["poll"]);
    let seq = detections(&env.events())[0]["seq"].to_string();
    env.ok(&[
        "retract",
        &seq,
        "--note",
        "the article was withdrawn by its publisher",
    ]);
    assert_eq!(env.status("LVA"), "unknown");
    let out = env.ok(&["reclassify"]);
    assert!(out.contains("nothing appended"), "{out}");
    assert_eq!(env.status("LVA"), "unknown");
}

#[test]
fn an_empty_database_has_nothing_to_reclassify() {
    let env = Env::new();
    let out = env.ok(&["reclassify"]);
    assert!(out.contains("0 items re-read"), "{out}");
}

/// Pages hold whole items: every feed's copy of a key lands on one page,
/// and every key is visited exactly once.
#[test]
fn pages_walk_every_item_once_with_all_its_copies() {
    use treatywatch::domain::Policy;
    use treatywatch::feed::Item;
    use treatywatch::store::{FeedState, Store};

    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(&dir.path().join("log.db")).expect("open");
    let now = chrono::Utc::now();
    let items: Vec<Item> = (0..7)
        .map(|i| Item {
            key: format!("id:https://wire.example.org/{i}"),
            title: format!("item {i}"),
            text: String::new(),
            link: None,
            published: None,
            content_hash: format!("{i}"),
        })
        .collect();
    // Feed "a" carries every item, feed "b" every other one.
    for (feed, step) in [("a", 1), ("b", 2)] {
        let carried: Vec<&Item> = items.iter().step_by(step).collect();
        store
            .commit_feed(
                &FeedState::new(feed, "https://x.example.org/"),
                &carried,
                &[],
                &Policy::default(),
                now,
            )
            .expect("commit");
    }
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    let mut after = String::new();
    while let Some((page, _)) = store
        .correct_items(&after, 3, &Policy::default(), now, |_| Vec::new())
        .expect("page")
    {
        assert!(page.items.len() <= 6, "3 keys, at most 2 copies each");
        for copies in page.items.chunk_by(|a, b| a.key == b.key) {
            let feeds = copies.iter().map(|c| c.feed_id.clone()).collect();
            seen.push((copies[0].key.clone(), feeds));
        }
        after = page.last_key().expect("a page has items").to_string();
    }
    let expected: Vec<(String, Vec<String>)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let feeds = if i % 2 == 0 {
                vec!["a", "b"]
            } else {
                vec!["a"]
            };
            (
                item.key.clone(),
                feeds.into_iter().map(String::from).collect(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
}

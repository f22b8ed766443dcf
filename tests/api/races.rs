use crate::helpers::*;
use serde_json::json;

/// Two doctors who both hold the bleep press Acknowledge at the same moment: exactly one wins,
/// and the other is told who did. Repeated so that real interleavings are exercised.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_acknowledgement_is_told_who_won() {
    let w = Ward::new().await;
    let app = &w.app;
    // Ben shares the night bleep with Amy.
    let (s, body) = app
        .post(
            &format!("/api/v1/roles/{}/hand-over", w.fy1),
            &w.amy.token,
            json!({ "to": w.ben.id, "share": true }),
        )
        .await;
    assert_eq!(s, 200, "{body}");

    let mut wins = [0, 0];
    for _ in 0..15 {
        let id = app
            .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
            .await;
        let (a, b) = tokio::join!(
            app.act(&id, "acknowledge", &w.amy.token, json!({})),
            app.act(&id, "acknowledge", &w.ben.token, json!({})),
        );
        let (winner, loser, loser_body) = match (a.0, b.0) {
            (200, 409) => (&w.amy, &w.ben, b.1),
            (409, 200) => (&w.ben, &w.amy, a.1),
            other => panic!(
                "expected one 200 and one 409, got {other:?}: {} / {}",
                a.1, b.1
            ),
        };
        if winner.id == w.amy.id {
            wins[0] += 1
        } else {
            wins[1] += 1
        }
        let msg = loser_body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&winner.name),
            "{} was told {msg:?}",
            loser.name
        );
        assert_eq!(
            loser_body["error"]["acknowledged_by"]["id"],
            winner.id.as_str()
        );
        let (_, t) = app
            .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
            .await;
        let acks = t["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "acknowledged")
            .count();
        assert_eq!(acks, 1, "exactly one acknowledgement is recorded");
        assert_eq!(t["acknowledged_by"]["id"], winner.id.as_str());
    }
    eprintln!("amy won {}, ben won {}", wins[0], wins[1]);
}

/// A comment written while the holder acknowledges and then completes the same task: both
/// are kept, whichever reaches the task first. A comment marks the task changed without a
/// new version and appends to its timeline, so a status change that waited for the task's
/// row behind it must still number its own event after the comment's, not fail. Repeated
/// so that real interleavings are exercised.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_comment_beside_a_status_change_keeps_both_and_the_timeline_in_order() {
    let w = Ward::new().await;
    let app = &w.app;
    for round in 0..10 {
        let id = app
            .raised(&w.nurse.token, &w.fy1, json!({ "priority": "urgent" }))
            .await;
        let comments = format!("/api/v1/tasks/{id}/comments");
        for (action, body) in [
            ("acknowledge", json!({})),
            ("complete", json!({ "outcome": { "code": "done" } })),
        ] {
            let text = format!("round {round}: while {action}");
            let (changed, commented) = tokio::join!(
                app.act(&id, action, &w.amy.token, body),
                app.post(&comments, &w.nurse.token, json!({ "text": text })),
            );
            assert_eq!(changed.0, 200, "{action}: {}", changed.1);
            assert_eq!(commented.0, 201, "the comment: {}", commented.1);
        }
        let (s, t) = app
            .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
            .await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(t["status"], "completed");
        let timeline = t["timeline"].as_array().unwrap();
        let seqs: Vec<i64> = timeline
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(
            seqs, expected,
            "the timeline is numbered 1, 2, 3 … with no gap"
        );
        let kinds: Vec<&str> = timeline
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        for kind in ["raised", "acknowledged", "completed"] {
            assert_eq!(
                kinds.iter().filter(|k| **k == kind).count(),
                1,
                "{kind}: {kinds:?}"
            );
        }
        assert_eq!(
            kinds.iter().filter(|k| **k == "commented").count(),
            2,
            "{kinds:?}"
        );
    }
}

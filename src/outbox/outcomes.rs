//! What the delivery loop's sends came to, written many to a transaction: the outcomes
//! gathered for one write, and what to write of each device they reached.
use super::notification::DeviceResult;
use crate::domain::delivery::Outcome;

/// Outcomes written to one transaction at most.
const RECORD_MOST: usize = 1024;

/// How long the recorder waits for more outcomes before it writes what it has, and in a
/// burst how often it looks whether the sends have eased. Under load several requests'
/// sends end within it, and go in one statement, not one each (a third of the statements
/// on PostgreSQL with 500 lifecycles a second); nothing waits for the write but the row.
const RECORD_GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// In a burst, the longest an outcome waits to be written.
pub const RECORD_WAIT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// What one send came to.
pub(super) struct Done {
    pub id: String,
    pub task_id: String,
    /// A push that failed for good to this person: a text waiting for them goes now.
    pub push_failed_to: Option<String>,
    pub outcome: Outcome,
    pub devices: Vec<(String, DeviceResult)>,
}

/// What to write of each device a batch of sends reached: its latest result, or that it is
/// gone if its push service said so to any of them. One write per device, not per push: a
/// doctor's phone that took a hundred pushes in a batch is one row to update.
pub(super) fn device_results(batch: &[Done]) -> Vec<(&str, &DeviceResult)> {
    let mut latest: Vec<(&str, &DeviceResult)> = Vec::new();
    for (device, result) in batch.iter().flat_map(|d| &d.devices) {
        match latest.iter_mut().find(|seen| seen.0 == device.as_str()) {
            Some((_, DeviceResult::Gone)) => {}
            Some((_, seen)) => *seen = result,
            None => latest.push((device, result)),
        }
    }
    latest
}

/// The outcomes to write next, starting with `first`: whatever comes in within
/// [`RECORD_GATHER`], and, while a burst is being sent (`sending_hard`), more as they come,
/// for up to `wait_most` ([`RECORD_WAIT_MOST`]) or [`RECORD_MOST`] outcomes. In a burst the sends go first and
/// the book-keeping after, in few transactions: the phones get their pushes sooner, and a
/// crash meanwhile loses nothing (the rows' leases run out and they are sent again).
pub(super) async fn gather(
    first: Done,
    done_rx: &mut tokio::sync::mpsc::UnboundedReceiver<Done>,
    sending_hard: impl Fn() -> bool,
    wait_most: std::time::Duration,
) -> Vec<Done> {
    let since = tokio::time::Instant::now();
    let mut batch = vec![first];
    loop {
        while batch.len() < RECORD_MOST {
            match done_rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let waited = since.elapsed();
        let eased = !sending_hard() || waited >= wait_most;
        if batch.len() >= RECORD_MOST || (waited >= RECORD_GATHER && eased) {
            return batch;
        }
        tokio::time::sleep(RECORD_GATHER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &str, devices: Vec<(&str, DeviceResult)>) -> Done {
        Done {
            id: id.into(),
            task_id: "t".into(),
            push_failed_to: None,
            outcome: Outcome::Sent,
            devices: devices
                .into_iter()
                .map(|(d, r)| (d.to_string(), r))
                .collect(),
        }
    }

    fn ids(batch: &[Done]) -> Vec<&str> {
        batch.iter().map(|d| d.id.as_str()).collect()
    }

    fn summary(batch: &[Done]) -> Vec<(String, String)> {
        device_results(batch)
            .into_iter()
            .map(|(d, r)| {
                let r = match r {
                    DeviceResult::Delivered => "delivered".to_string(),
                    DeviceResult::Gone => "gone".to_string(),
                    DeviceResult::Failed(e) => format!("failed: {e}"),
                };
                (d.to_string(), r)
            })
            .collect()
    }

    #[tokio::test]
    async fn outcomes_are_written_soon_unless_a_burst_is_being_sent() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let wait = std::time::Duration::from_secs(2);
        // A few sends out: what has come in, and what comes in within a few milliseconds,
        // is written together, at once after.
        tx.send(done("n2", vec![])).unwrap();
        let soon = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            soon.send(done("n2b", vec![])).unwrap();
        });
        let started = std::time::Instant::now();
        let batch = gather(done("n1", vec![]), &mut rx, || false, wait).await;
        assert_eq!(ids(&batch), ["n1", "n2", "n2b"]);
        assert!(
            started.elapsed() >= RECORD_GATHER,
            "{:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < wait / 2, "{:?}", started.elapsed());
        // Every send allowed is out: outcomes arriving meanwhile join the batch, which
        // is written once the longest wait has passed.
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            late.send(done("n4", vec![])).unwrap();
        });
        let started = std::time::Instant::now();
        let batch = gather(done("n3", vec![]), &mut rx, || true, wait).await;
        assert_eq!(ids(&batch), ["n3", "n4"]);
        assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
        // A full batch is written without waiting, the rest left for the next.
        for i in 0..RECORD_MOST {
            tx.send(done(&format!("m{i}"), vec![])).unwrap();
        }
        let started = std::time::Instant::now();
        let batch = gather(done("m", vec![]), &mut rx, || true, wait).await;
        assert_eq!(batch.len(), RECORD_MOST);
        assert!(started.elapsed() < wait / 2, "{:?}", started.elapsed());
        assert!(
            rx.try_recv().is_ok(),
            "the last outcome waits for the next batch"
        );
    }

    #[test]
    fn each_device_is_written_once_with_its_latest_result_and_gone_stays_gone() {
        let batch = [
            done(
                "n1",
                vec![
                    ("phone", DeviceResult::Delivered),
                    ("tablet", DeviceResult::Gone),
                ],
            ),
            done("n2", vec![("phone", DeviceResult::Failed("503".into()))]),
            done(
                "n3",
                vec![
                    ("tablet", DeviceResult::Delivered),
                    ("watch", DeviceResult::Delivered),
                ],
            ),
        ];
        assert_eq!(
            summary(&batch),
            [
                ("phone".to_string(), "failed: 503".to_string()),
                ("tablet".to_string(), "gone".to_string()),
                ("watch".to_string(), "delivered".to_string()),
            ]
        );
        let later = [
            done(
                "n4",
                vec![("phone", DeviceResult::Failed("timeout".into()))],
            ),
            done("n5", vec![("phone", DeviceResult::Delivered)]),
        ];
        assert_eq!(
            summary(&later),
            [("phone".to_string(), "delivered".to_string())]
        );
    }
}

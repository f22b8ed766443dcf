//! The tasks this instance last changed for a caller who came with a staff token, as the
//! change left them: so that the same caller's next change of the same task (a start or a
//! completion after their own acknowledgement) can be decided without reading the task
//! again, one round trip fewer. What it holds is never trusted on its own: such a change is
//! saved only if the task's version is still the one held, and the token is still that
//! member of staff's, active, with the same permissions, checked by the write itself
//! (`store::tasks::Caller`). Otherwise nothing is written and the change is read and judged
//! afresh, as any other.
use crate::domain::Task;
use crate::store::directory::Staff;
use crate::store::events::Story;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The most tasks held; past it the longest held goes. Each is a task in hand (acknowledged,
/// not yet completed) whose caller came through this instance.
const RECENT_MOST: usize = 1024;

/// A task as this instance's last change of it left it, and who made that change.
pub struct Held {
    pub task: Task,
    pub story: Story,
    pub staff: Staff,
    /// The hash of the token they came with (as stored: `directory::hash_token`).
    pub token_hash: String,
}

/// See the module's documentation.
#[derive(Default)]
pub struct Recent(Mutex<Tasks>);

#[derive(Default)]
struct Tasks {
    by_id: HashMap<String, Held>,
    /// Ids in the order they were put (some since taken).
    order: VecDeque<String>,
}

impl Recent {
    /// The task `id` as held for the bearer of the token hashed `token_hash`, taken out: a
    /// change made from it puts back what it leaves.
    pub fn take(&self, id: &str, token_hash: &str) -> Option<Held> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match t.by_id.get(id) {
            Some(held) if held.token_hash == token_hash => t.by_id.remove(id),
            _ => None,
        }
    }

    /// Holds `held` for its caller's next change, in place of whatever was held of it.
    pub fn put(&self, held: Held) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let id = held.task.id.clone();
        if t.by_id.insert(id.clone(), held).is_none() {
            t.order.push_back(id);
        }
        while t.by_id.len() > RECENT_MOST {
            match t.order.pop_front() {
                Some(oldest) => {
                    t.by_id.remove(&oldest);
                }
                None => break,
            }
        }
        // Ids already taken stay in the order until they come round; keep it bounded.
        if t.order.len() > 2 * RECENT_MOST {
            let Tasks { by_id, order } = &mut *t;
            let mut seen = std::collections::HashSet::new();
            order.retain(|id| by_id.contains_key(id) && seen.insert(id.clone()));
        }
    }

    /// Forgets the task `id` (it was changed another way, or is closed).
    pub fn forget(&self, id: &str) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.by_id.remove(id);
    }
}

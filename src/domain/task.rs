//! The clinical task and its lifecycle, which follows FHIR R4's Task state machine.
use super::{coded_enum, NhsNumber};
use chrono::{DateTime, Duration, Utc};

coded_enum!(
    /// FHIR request-priority codes, in order of urgency.
    Priority, "priority" {
        Stat => "stat",
        Asap => "asap",
        Urgent => "urgent",
        Routine => "routine",
    }
);

coded_enum!(
    /// FHIR Task.status values that Bleepless uses.
    Status, "status" {
        Requested => "requested",
        Accepted => "accepted",
        InProgress => "in-progress",
        Completed => "completed",
        Cancelled => "cancelled",
        Rejected => "rejected",
    }
);

coded_enum!(
    /// What kind of work is asked for.
    Category, "category" {
        Review => "review",
        Cannula => "cannula",
        Bloods => "bloods",
        Fluids => "fluids",
        Prescription => "prescription",
        Other => "other",
    }
);

coded_enum!(
    /// How a task ended, coded so that the record and the statistics can count it.
    OutcomeCode, "outcome" {
        Done => "done",
        DonePlanChanged => "done-plan-changed",
        Referred => "referred",
        NotNeeded => "not-needed",
        Unable => "unable",
    }
);

coded_enum!(
    /// Something a person does to a task.
    Action, "action" {
        Acknowledge => "acknowledge",
        Start => "start",
        Complete => "complete",
        Cancel => "cancel",
        Decline => "decline",
        Reassign => "reassign",
    }
);

impl Priority {
    pub fn label(self) -> &'static str {
        match self {
            Priority::Stat => "Stat (immediate)",
            Priority::Asap => "ASAP",
            Priority::Urgent => "Urgent",
            Priority::Routine => "Routine",
        }
    }
}

impl OutcomeCode {
    /// Only these outcomes need words beside the code: what stopped it, or whom it went to.
    pub fn needs_text(self) -> bool {
        matches!(self, OutcomeCode::Unable | OutcomeCode::Referred)
    }

    /// The outcome's words, trimmed: needed for `unable` and `referred`, optional for the
    /// others; at most [`MAX_TEXT`] characters.
    pub fn checked_text(self, text: &str) -> Result<String, String> {
        let text = text.trim();
        if self.needs_text() && text.is_empty() {
            return Err(format!(
                "outcome.text is required for {:?} ({}): say what stopped it or whom it went to",
                self.code(),
                self.label()
            ));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(format!(
                "outcome.text is {} characters: at most {MAX_TEXT}",
                text.chars().count()
            ));
        }
        Ok(text.to_string())
    }

    pub fn label(self) -> &'static str {
        match self {
            OutcomeCode::Done => "Done as requested",
            OutcomeCode::DonePlanChanged => "Done, plan changed",
            OutcomeCode::Referred => "Referred to another team",
            OutcomeCode::NotNeeded => "Not needed on review",
            OutcomeCode::Unable => "Could not be done",
        }
    }
}

impl Status {
    /// Open tasks still need someone; the others are finished.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Requested | Status::Accepted | Status::InProgress
        )
    }
}

impl Action {
    /// The status an action leads to from `from`, or `None` if the state machine forbids it.
    pub fn next_status(self, from: Status) -> Option<Status> {
        use Status::*;
        match (self, from) {
            (Action::Acknowledge, Requested) => Some(Accepted),
            (Action::Start, Accepted) => Some(InProgress),
            (Action::Complete, Accepted | InProgress) => Some(Completed),
            (Action::Cancel, Requested | Accepted | InProgress | Rejected) => Some(Cancelled),
            (Action::Decline, Requested | Accepted) => Some(Rejected),
            (Action::Reassign, Requested | Accepted | Rejected) => Some(Requested),
            _ => None,
        }
    }

    pub fn past_tense(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledged",
            Action::Start => "started",
            Action::Complete => "completed",
            Action::Cancel => "cancelled",
            Action::Decline => "declined",
            Action::Reassign => "reassigned",
        }
    }
}

/// Target times to acknowledge, per priority (the first escalation level's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AckTargets {
    pub stat: u32,
    pub asap: u32,
    pub urgent: u32,
    pub routine: u32,
}

impl Default for AckTargets {
    fn default() -> Self {
        Self {
            stat: 120,
            asap: 300,
            urgent: 900,
            routine: 3600,
        }
    }
}

impl AckTargets {
    pub fn seconds(&self, p: Priority) -> u32 {
        match p {
            Priority::Stat => self.stat,
            Priority::Asap => self.asap,
            Priority::Urgent => self.urgent,
            Priority::Routine => self.routine,
        }
    }

    pub fn deadline(&self, p: Priority, from: DateTime<Utc>) -> DateTime<Utc> {
        from + Duration::seconds(i64::from(self.seconds(p)))
    }
}

/// How tasks escalate: each level lasts the priority's time to acknowledge; tasks assigned to
/// a person (not a role) escalate along the fallback role's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub ack_seconds: AckTargets,
    pub fallback_role: Option<String>,
    /// Whether email goes out as a second channel (an SMTP server is configured).
    pub email: bool,
    /// The patient-record servers completed and cancelled tasks are sent to (by name; none
    /// when no FHIR server is configured).
    pub records: Vec<String>,
    /// When a text message follows an unseen notification (none when no provider is set).
    pub text_after: super::delivery::TextAfter,
    /// The hospital's time zone: rotas are written in it.
    pub zone: super::rota::Zone,
}

/// Who a task is for: an on-call role (whoever holds it) or a named member of staff.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Assignee {
    Role(String),
    Staff(String),
}

/// A NEWS2 score (National Early Warning Score 2): 0 to 20.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct News2(i32);

impl News2 {
    pub fn new(score: i32) -> Result<News2, String> {
        if (0..=20).contains(&score) {
            Ok(News2(score))
        } else {
            Err(format!(
                "news2 is {score}; a NEWS2 score is between 0 and 20"
            ))
        }
    }

    pub fn value(self) -> i32 {
        self.0
    }
}

/// A clinical task: one request for work about one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub nhs_number: String,
    pub ward: String,
    pub bed: String,
    pub category: Category,
    pub description: String,
    pub priority: Priority,
    pub news2: Option<i32>,
    pub status: Status,
    pub assignee: Assignee,
    pub raised_by: String,
    pub raised_at: DateTime<Utc>,
    pub ack_deadline: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<(OutcomeCode, String)>,
    pub status_reason: Option<String>,
    pub escalation_level: i32,
    pub next_escalation_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Requested && self.ack_deadline < now
    }

    /// A task as raised: requested, level 0, due for escalation at its deadline.
    pub fn raised(
        id: String,
        new: NewTask,
        assignee: Assignee,
        by: &str,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Task {
        let deadline = policy.ack_seconds.deadline(new.priority, now);
        Task {
            id,
            nhs_number: new.nhs_number.as_str().to_string(),
            ward: new.ward,
            bed: new.bed,
            category: new.category,
            description: new.description,
            priority: new.priority,
            news2: new.news2.map(News2::value),
            status: Status::Requested,
            assignee,
            raised_by: by.to_string(),
            raised_at: now,
            ack_deadline: deadline,
            acknowledged_by: None,
            acknowledged_at: None,
            started_at: None,
            ended_at: None,
            outcome: None,
            status_reason: None,
            escalation_level: 0,
            next_escalation_at: Some(deadline),
            version: 1,
            updated_at: now,
        }
    }
}

/// A validated request to raise a task.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub nhs_number: NhsNumber,
    pub ward: String,
    pub bed: String,
    pub category: Category,
    pub description: String,
    pub priority: Priority,
    pub news2: Option<News2>,
    /// A staff id, or an on-call role's id or name.
    pub assignee: String,
}

pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_TEXT: usize = 2000;
pub const MAX_BED: usize = 20;

/// Checks a required free-text field: present, not blank, not too long.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{field} is required and may not be blank"));
    }
    if v.chars().count() > max {
        return Err(format!(
            "{field} is {} characters long; at most {max} are allowed",
            v.chars().count()
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A stat task for the "Medicine FY1 night" role, raised at 22:00, for other tests.
    pub(crate) fn requested_task() -> Task {
        let new = NewTask {
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            ward: "Ward 5".into(),
            bed: "12".into(),
            category: Category::Cannula,
            description: "Cannula tissued".into(),
            priority: Priority::Stat,
            news2: Some(News2::new(3).unwrap()),
            assignee: "role-fy1".into(),
        };
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap();
        let role = Assignee::Role("role-fy1".into());
        Task::raised("t1".into(), new, role, "nurse", now, &Policy::default())
    }

    #[test]
    fn news2_is_checked_in_one_place() {
        assert_eq!(News2::new(20).map(News2::value), Ok(20));
        assert!(News2::new(21).unwrap_err().contains("between 0 and 20"));
        assert!(News2::new(-1).is_err());
    }

    #[test]
    fn lifecycle_follows_fhir_task_state_machine() {
        assert_eq!(
            Action::Acknowledge.next_status(Status::Requested),
            Some(Status::Accepted)
        );
        assert_eq!(
            Action::Start.next_status(Status::Accepted),
            Some(Status::InProgress)
        );
        assert_eq!(
            Action::Complete.next_status(Status::InProgress),
            Some(Status::Completed)
        );
        assert_eq!(Action::Acknowledge.next_status(Status::Accepted), None);
        assert_eq!(Action::Complete.next_status(Status::Requested), None);
        for a in Action::ALL {
            assert_eq!(
                a.next_status(Status::Completed),
                None,
                "{a} after completed"
            );
            assert_eq!(
                a.next_status(Status::Cancelled),
                None,
                "{a} after cancelled"
            );
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_name_the_choices() {
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.code()), Ok(*p));
        }
        let err = Priority::parse("soon").unwrap_err();
        assert!(err.contains("stat, asap, urgent, routine"), "{err}");
    }
}

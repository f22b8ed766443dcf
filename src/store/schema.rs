// Written by hand to match migrations/: one schema for SQLite and PostgreSQL.
diesel::table! {
    staff (id) {
        id -> Text,
        name -> Text,
        email -> Nullable<Text>,
        permissions -> Text,
        token_hash -> Text,
        password_hash -> Nullable<Text>,
        active -> Bool,
        created_at -> Timestamp,
        gmc_number -> Nullable<Text>,
        nmc_pin -> Nullable<Text>,
        sds_user_id -> Nullable<Text>,
        mobile -> Nullable<Text>,
        busy_until -> Nullable<Timestamp>,
        busy_reason -> Nullable<Text>,
    }
}

diesel::table! {
    wards (name) {
        name -> Text,
        created_at -> Timestamp,
        ods_site_code -> Nullable<Text>,
    }
}

diesel::table! {
    oncall_roles (id) {
        id -> Text,
        name -> Text,
        escalates_to -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    role_holdings (id) {
        id -> Text,
        role_id -> Text,
        staff_id -> Text,
        handed_over_by -> Nullable<Text>,
        held_from -> Timestamp,
        held_until -> Nullable<Timestamp>,
        source -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    tasks (id) {
        id -> Text,
        nhs_number -> Text,
        ward -> Text,
        bed -> Text,
        category -> Text,
        description -> Text,
        priority -> Text,
        news2 -> Nullable<Integer>,
        status -> Text,
        assignee_role_id -> Nullable<Text>,
        assignee_staff_id -> Nullable<Text>,
        raised_by -> Text,
        raised_at -> Timestamp,
        ack_deadline -> Timestamp,
        acknowledged_by -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        outcome_code -> Nullable<Text>,
        outcome_text -> Nullable<Text>,
        status_reason -> Nullable<Text>,
        escalation_level -> Integer,
        next_escalation_at -> Nullable<Timestamp>,
        version -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    task_events (task_id, seq) {
        task_id -> Text,
        seq -> Integer,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        kind -> Text,
        from_status -> Nullable<Text>,
        to_status -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::joinable!(role_holdings -> oncall_roles (role_id));
diesel::joinable!(task_events -> tasks (task_id));

diesel::table! {
    heartbeats (name) {
        name -> Text,
        at -> Timestamp,
        instance -> Text,
        count -> BigInt,
    }
}

diesel::table! {
    delivery_receipts (outbox_id, device_id) {
        outbox_id -> Text,
        device_id -> Text,
        task_id -> Text,
        staff_id -> Text,
        shown_at -> Timestamp,
    }
}

diesel::table! {
    rota_patterns (id) {
        id -> Text,
        role_id -> Text,
        staff_id -> Text,
        weekdays -> Text,
        starts -> Text,
        ends -> Text,
        first_day -> Text,
        last_day -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    rota_shifts (id) {
        id -> Text,
        role_id -> Text,
        staff_id -> Nullable<Text>,
        replaces -> Nullable<Text>,
        starts_at -> Timestamp,
        ends_at -> Timestamp,
        pattern_id -> Nullable<Text>,
        note -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    role_eligibility (role_id, staff_id) {
        role_id -> Text,
        staff_id -> Text,
        granted_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    rota_patterns,
    rota_shifts,
    role_eligibility,
    delivery_receipts,
    heartbeats,
    staff,
    wards,
    oncall_roles,
    role_holdings,
    tasks,
    task_events,
    settings,
    push_subscriptions,
    outbox,
    used_ack_links,
    sessions,
);

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    push_subscriptions (id) {
        id -> Text,
        staff_id -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth -> Text,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        last_success_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        last_shown_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    used_ack_links (notification_id) {
        notification_id -> Text,
        used_at -> Timestamp,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        staff_id -> Text,
        csrf -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_seen_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        destination -> Text,
        dedupe_key -> Text,
        task_id -> Text,
        task_version -> BigInt,
        level -> Integer,
        recipient_id -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        due_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sign_in_throttle (bucket) {
        bucket -> Text,
        failures -> Integer,
        window_start -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        action -> Text,
        subject -> Nullable<Text>,
        detail -> Text,
        client -> Nullable<Text>,
    }
}

diesel::table! {
    identity_bindings (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        staff_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sign_in_attempts (state_hash) {
        state_hash -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        next_path -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        staff_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

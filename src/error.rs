//! One error type that knows its HTTP status. What went wrong inside goes to the log; the
//! caller sees a clean message that says what was wrong with their request.
use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde_json::{json, Value};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { message: String, detail: Value },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn conflict(message: impl Into<String>, detail: Value) -> Self {
        AppError::Conflict {
            message: message.into(),
            detail,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict { .. } => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unprocessable(_) => "invalid",
            AppError::TooManyRequests(_) => "too_many_requests",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The message a caller may see: internal causes stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "something went wrong inside Bleepless; it has been logged".into()
            }
            AppError::Unavailable(_) => "the database is unavailable; try again shortly".into(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let mut body =
            json!({ "error": { "code": self.code(), "message": self.public_message() } });
        if let AppError::Conflict { detail, .. } = self {
            if let (Some(err), Value::Object(extra)) = (body["error"].as_object_mut(), detail) {
                for (k, v) in extra {
                    err.insert(k.clone(), v.clone());
                }
            }
        }
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, AppError::Unauthorized(_)) {
            res.insert_header(("WWW-Authenticate", "Bearer realm=\"bleepless\""));
        }
        res.json(body)
    }
}

/// What a caller is told when the database stopped their change for another's.
const CONFLICT: &str =
    "the database stopped this change to let a competing one finish; nothing was saved, send it again";

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => AppError::NotFound("not found".into()),
            diesel::result::Error::DatabaseError(kind, info) => {
                let msg = info.message().to_string();
                match kind {
                    diesel::result::DatabaseErrorKind::ClosedConnection => {
                        AppError::Unavailable(msg)
                    }
                    // PostgreSQL stopped this transaction to let another go on (a deadlock
                    // or a serialization conflict): nothing of it was saved, and the same
                    // request sent again can succeed.
                    diesel::result::DatabaseErrorKind::SerializationFailure => {
                        AppError::Unavailable(format!("{CONFLICT}: {msg}"))
                    }
                    // diesel has no kind of its own for a deadlock (SQLSTATE 40P01).
                    _ if msg.starts_with("deadlock detected") => {
                        AppError::Unavailable(format!("{CONFLICT}: {msg}"))
                    }
                    _ => AppError::Internal(format!("database error {kind:?}: {msg}")),
                }
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        AppError::Unavailable(e.to_string())
    }
}

//! `/fhir` errors: each an OperationOutcome with its HTTP status.
use crate::error::AppError;
use crate::fhir::mapping::{self, FHIR_JSON};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

/// An error answered as an OperationOutcome with its HTTP status.
#[derive(Debug)]
pub struct FhirError {
    pub(super) status: StatusCode,
    code: &'static str,
    message: String,
}

impl FhirError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        FhirError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<AppError> for FhirError {
    fn from(e: AppError) -> Self {
        let code = match &e {
            AppError::BadRequest(_) | AppError::Unprocessable(_) => "invalid",
            AppError::Unauthorized(_) => "login",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not-found",
            AppError::Conflict { .. } => "conflict",
            AppError::PayloadTooLarge(_) => "too-long",
            AppError::UnsupportedMediaType(_) => "not-supported",
            AppError::Unavailable(_) => "transient",
            AppError::TooManyRequests(_) => "throttled",
            AppError::Internal(_) => "exception",
        };
        match &e {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error in /fhir"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        FhirError::new(e.status_code(), code, e.public_message())
    }
}

impl ResponseError for FhirError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"bleepless\""));
        }
        res.content_type(FHIR_JSON)
            .body(mapping::operation_outcome(self.code, &self.message).to_string())
    }
}

pub(super) type FhirResult = Result<HttpResponse, FhirError>;

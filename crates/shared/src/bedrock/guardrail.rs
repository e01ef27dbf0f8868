//! Bedrock Guardrails on the copy we are about to write, through `ApplyGuardrail`.
//!
//! A guardrail attached to a Converse call does not evaluate a tool call's input, which is where
//! our copy is; so the parsed fields go through `ApplyGuardrail` (source `OUTPUT`): content
//! filters on the copy, and contextual grounding of the copy (`guard_content`) against the
//! brief, the offer and the products' facts (`grounding_source`).

use super::{classify, BedrockClient, BedrockError, Counters};
use aws_sdk_bedrockruntime::types::{
    GuardrailAction, GuardrailContentBlock, GuardrailContentQualifier, GuardrailContentSource,
    GuardrailTextBlock,
};

/// Which guardrail (template parameters `BedrockGuardrailId`, `BedrockGuardrailVersion`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardrailRef {
    pub id: String,
    pub version: String,
}

/// What is checked: the copy, what it must be grounded in, and what it answers.
pub struct GuardrailCheck<'a> {
    pub copy: &'a str,
    pub grounding_source: &'a str,
    pub query: &'a str,
}

/// The guardrail's verdict and the text units it billed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardrailVerdict {
    pub intervened: bool,
    pub content_units: u64,
    pub grounding_units: u64,
}

impl BedrockClient {
    /// Runs `guardrail` on `check`; throttling and transient failures are retried as Converse
    /// calls are.
    pub async fn apply_guardrail(
        &self,
        guardrail: &GuardrailRef,
        check: &GuardrailCheck<'_>,
    ) -> Result<GuardrailVerdict, BedrockError> {
        let block = |text: &str, q: GuardrailContentQualifier| {
            GuardrailTextBlock::builder()
                .text(text)
                .qualifiers(q)
                .build()
                .map(GuardrailContentBlock::Text)
                .map_err(|e| BedrockError::Unexpected(e.to_string()))
        };
        let content = vec![
            block(
                check.grounding_source,
                GuardrailContentQualifier::GroundingSource,
            )?,
            block(check.query, GuardrailContentQualifier::Query)?,
            block(check.copy, GuardrailContentQualifier::GuardContent)?,
        ];
        let mut attempt = 1;
        loop {
            let sent = self
                .client
                .apply_guardrail()
                .guardrail_identifier(&guardrail.id)
                .guardrail_version(&guardrail.version)
                .source(GuardrailContentSource::Output)
                .set_content(Some(content.clone()))
                .send()
                .await
                .map_err(classify);
            let err = match sent {
                Ok(out) => {
                    let usage = out.usage();
                    return Ok(GuardrailVerdict {
                        intervened: *out.action() == GuardrailAction::GuardrailIntervened,
                        content_units: usage.map_or(0, |u| u.content_policy_units() as u64),
                        grounding_units: usage
                            .map_or(0, |u| u.contextual_grounding_policy_units() as u64),
                    });
                }
                Err(e) => e,
            };
            if matches!(err, BedrockError::Throttled) {
                Counters::bump(&self.counters.throttled, 1);
            }
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                tracing::warn!(
                    attempts = attempt,
                    kind = err.kind(),
                    "apply guardrail failed"
                );
                return Err(err);
            }
            tokio::time::sleep(self.retry.jittered(attempt)).await;
            attempt += 1;
        }
    }
}

//! SMTP probe (being written).

use super::net::ProbeContext;
use crate::config::SmtpPlan;
use crate::finding::Finding;

pub async fn probe(_ctx: &ProbeContext, _relay: &SmtpPlan) -> Vec<Finding> {
    Vec::new()
}

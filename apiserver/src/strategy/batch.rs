//! Jobs and CronJobs (`batch/v1` defaults and `pkg/apis/batch/validation`).

use serde_json::{Map, Value, json};

use super::fields::{
    at, check_immutable, child, invalid_str, is_unset, nonnegative, object_mut, one_of, positive,
    required, set_default, set_default_str, str_at, string_or_empty,
};
use super::meta::{
    NameRule, go_string_map, selector_is_empty, selector_matches, update_with,
    validate_label_selector, validate_object_meta,
};
use super::pod::{default_pod_template, validate_pod_template, validate_template_restart_policy};
use crate::error::Cause;

const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// Job defaults. Besides `SetDefaults_Job` (1 completion/parallelism, 6 retries, NonIndexed,
/// not suspended, TerminatingOrFailed replacement) this generates the selector and template
/// labels from `metadata.uid` like the Job strategy's create hook — so run it after the registry
/// assigned the uid; without a uid nothing is generated.
pub(crate) fn default_job(obj: &mut Value) {
    generate_selector(obj);
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if is_unset(spec.get("completions")) && is_unset(spec.get("parallelism")) {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec.get("backoffLimitPerIndex")) {
        i64::from(6)
    } else {
        i64::from(i32::MAX)
    };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default_str(spec, "completionMode", "NonIndexed");
    set_default(spec, "suspend", json!(false));
    let replacement = if is_unset(spec.get("podFailurePolicy")) {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set_default_str(spec, "podReplacementPolicy", replacement);
    default_pod_template(spec.get_mut("template"));
    let labels = at(spec, &["template", "metadata", "labels"])
        .filter(|l| !is_unset(Some(l)))
        .cloned();
    if let Some(labels) = labels {
        super::apps::default_labels(obj, labels);
    }
}

/// The selector Kubernetes generates for a Job unless `manualSelector` is true.
fn generate_selector(obj: &mut Value) {
    let uid = at(obj, &["metadata", "uid"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = at(obj, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if uid.is_empty()
        || spec.get("manualSelector").and_then(Value::as_bool) == Some(true)
        || !is_unset(spec.get("selector"))
    {
        return;
    }
    let Some(labels) = object_mut(spec, "template")
        .and_then(|t| object_mut(t, "metadata"))
        .and_then(|m| object_mut(m, "labels"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (k, v) in [
        (CONTROLLER_UID, &uid),
        (JOB_NAME, &name),
        (LEGACY_CONTROLLER_UID, &uid),
        (LEGACY_JOB_NAME, &name),
    ] {
        labels.insert(k.to_string(), json!(v));
    }
    let mut match_labels = Map::new();
    match_labels.insert(CONTROLLER_UID.to_string(), json!(uid));
    spec["selector"] = json!({ "matchLabels": match_labels });
}

/// Job validation (`ValidateJob`).
pub(crate) fn validate_job(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    match obj.get("spec").filter(|s| s.is_object()) {
        Some(spec) => validate_job_spec(spec, "spec", &mut errs),
        None => errs.push(Cause::required("spec")),
    }
    errs
}

/// `JobSpec` rules, at `path` (`spec` or `spec.jobTemplate.spec`).
fn validate_job_spec(spec: &Value, path: &str, errs: &mut Vec<Cause>) {
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec, field, path, errs);
    }
    positive(spec, "activeDeadlineSeconds", path, errs);
    one_of(
        spec,
        "completionMode",
        path,
        &["NonIndexed", "Indexed"],
        false,
        errs,
    );
    if str_at(spec, "completionMode") == Some("Indexed") && is_unset(spec.get("completions")) {
        errs.push(required(
            child(path, "completions"),
            "when completion mode is Indexed",
        ));
    }
    one_of(
        spec,
        "podReplacementPolicy",
        path,
        &["TerminatingOrFailed", "Failed"],
        false,
        errs,
    );
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let selector_path = child(path, "selector");
    match selector {
        None if manual => errs.push(Cause::required(&selector_path)),
        None => {}
        Some(sel) => {
            errs.extend(validate_label_selector(Some(sel), &selector_path));
            let labels = at(spec, &["template", "metadata", "labels"]);
            if !selector_is_empty(sel) && !selector_matches(sel, labels) {
                errs.push(Cause::new(
                    "FieldValueInvalid",
                    child(path, "template.metadata.labels"),
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        go_string_map(labels)
                    ),
                ));
            }
        }
    }
    let template_path = child(path, "template");
    errs.extend(validate_pod_template(
        spec.get("template"),
        &template_path,
        &[],
    ));
    errs.extend(validate_template_restart_policy(
        spec.get("template"),
        &template_path,
        &["OnFailure", "Never"],
    ));
}

/// Job update: selector, template and (for NonIndexed jobs) completions are immutable.
pub(crate) fn validate_job_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = update_with(new, old, validate_job);
    check_immutable(new, old, &["spec", "selector"], "spec.selector", &mut errs);
    check_immutable(new, old, &["spec", "template"], "spec.template", &mut errs);
    if at(new, &["spec", "completionMode"]).and_then(Value::as_str) != Some("Indexed") {
        check_immutable(
            new,
            old,
            &["spec", "completions"],
            "spec.completions",
            &mut errs,
        );
    }
    errs
}

/// CronJob defaults: Allow, not suspended, keep 3 successful and 1 failed job; the job
/// template's pod spec gets pod defaults (its JobSpec is defaulted when the Job is created).
pub(crate) fn default_cron_job(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set_default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")) {
        default_pod_template(job_spec.get_mut("template"));
    }
}

/// CronJob validation (`ValidateCronJobCreate`): name ≤52 (the controller appends a suffix),
/// a parseable schedule, a valid job template.
pub(crate) fn validate_cron_job(obj: &Value) -> Vec<Cause> {
    let mut errs = validate_object_meta(obj, NameRule::Subdomain);
    let name = at(obj, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.push(invalid_str(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let Some(spec) = obj.get("spec").filter(|s| s.is_object()) else {
        errs.push(Cause::required("spec"));
        return errs;
    };
    let schedule = string_or_empty(spec, "schedule");
    if schedule.is_empty() {
        errs.push(Cause::required("spec.schedule"));
    } else if let Err(msg) = validate_schedule(schedule) {
        errs.push(invalid_str("spec.schedule", schedule, &msg));
    }
    one_of(
        spec,
        "concurrencyPolicy",
        "spec",
        &["Allow", "Forbid", "Replace"],
        true,
        &mut errs,
    );
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        nonnegative(spec, field, "spec", &mut errs);
    }
    if let Some(tz) =
        str_at(spec, "timeZone").filter(|tz| tz.is_empty() || tz.contains(char::is_whitespace))
    {
        errs.push(invalid_str("spec.timeZone", tz, "unknown time zone"));
    }
    match spec
        .get("jobTemplate")
        .and_then(|t| t.get("spec"))
        .filter(|s| s.is_object())
    {
        Some(job_spec) => validate_job_spec(job_spec, "spec.jobTemplate.spec", &mut errs),
        None => errs.push(Cause::required("spec.jobTemplate.spec")),
    }
    errs
}

// Everything in a CronJob's spec may change; the object rules still apply.
super::meta::plain_updates!(validate_cron_job_update => validate_cron_job);

/// Standard 5-field cron syntax (minute hour day-of-month month day-of-week) or a descriptor,
/// the grammar the CronJob controller's parser accepts.
fn validate_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if let Some(descriptor) = s.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d
                .strip_prefix("every ")
                .is_some_and(|dur| !dur.trim().is_empty()) =>
            {
                Ok(())
            }
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, name_base)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            validate_cron_part(part, min, max, names, name_base)?;
        }
    }
    Ok(())
}

fn validate_cron_part(
    part: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (part, None),
    };
    let value = |text: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(i as u32 + name_base);
        }
        text.parse::<u32>()
            .map_err(|_| format!("failed to parse int from {text}"))
    };
    let (start, end) = match range {
        "*" | "?" => (min, max),
        r => match r.split_once('-') {
            Some((a, b)) => (value(a)?, value(b)?),
            None => {
                let v = value(r)?;
                (v, if step.is_some() { max } else { v })
            }
        },
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {part}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {part}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {part}"
        ));
    }
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("step of range should be a positive number: {part}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_schedule;

    #[test]
    fn cron_schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * 0",
            "@hourly",
            "0 9-17 * JAN-MAR mon-fri",
            "15,45 */2 1 * ?",
            "@every 1h",
        ] {
            assert_eq!(validate_schedule(ok), Ok(()), "{ok}");
        }
        for bad in [
            "* * * *",
            "60 * * * *",
            "* * 0 * *",
            "TZ=UTC * * * * *",
            "@sometimes",
            "5-1 * * * *",
            "*/0 * * * *",
            "x * * * *",
        ] {
            assert!(validate_schedule(bad).is_err(), "{bad}");
        }
    }
}

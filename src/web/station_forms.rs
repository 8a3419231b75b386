//! The testing room's forms (see [`super::station`]): registering a sample before it is
//! tested (`/station/samples/new`, `POST /station/samples`), and a hold with the form of each
//! step its state allows (`/station/holds/{id}`, `POST /station/holds/{id}/actions`). Every
//! POST carries the session's CSRF token and goes through the very functions the API uses
//! (`api::samples::register_body`, `api::holds::act_on`), so the page and the API check the
//! same things; a refused form comes back with the error and what was typed.

use super::html::{message_page, page, respond, url_encode, PlainText};
use super::session::{cookie, csrf_for, same_secret, SESSION_COOKIE};
use super::signin::redirect;
use super::station::{
    action_label, chosen_market, hold_line, item_name, room_header, room_time, STYLE, TESTERS,
};
use crate::auth::Principal;
use crate::http::AppState;
use crate::store::holds::{load_hold, HoldView};
use crate::store::results::{self, ResultsFilter};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Form fields as sent, by name (the last value of a repeated name).
type FormFields = BTreeMap<String, String>;

fn fields_of(form: Result<Form<Vec<(String, String)>>, FormRejection>) -> FormFields {
    form.map(|Form(v)| v.into_iter().collect())
        .unwrap_or_default()
}

fn field<'a>(f: &'a FormFields, k: &str) -> &'a str {
    f.get(k).map(|s| s.as_str()).unwrap_or("")
}

/// The principal of a POST whose `csrf` field matches its session, else the answer.
async fn poster(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    f: &FormFields,
) -> Result<(Principal, String), Response> {
    let (who, sid) = super::page_principal(
        state,
        headers,
        uri,
        &TESTERS,
        "the testing room's forms are for station and contractor tokens.",
    )
    .await?;
    let sent = cookie(headers, SESSION_COOKIE).unwrap_or_default();
    if sent != sid || !same_secret(&csrf_for(&sid), field(f, "csrf")) {
        return Err(message_page(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form is out of date or did not come from this site (its CSRF token does not match the session): open the page again and send it from there.",
        ));
    }
    Ok((who, sid))
}

fn room_page(status: StatusCode, title: &str, body: Markup) -> Response {
    respond(
        status,
        page(
            "zh-CN",
            title,
            html! { style { (maud::PreEscaped(STYLE)) } },
            body,
        ),
    )
}

/// A text input of the form, with its error if it has one.
fn input(
    name: &str,
    label: &str,
    values: &FormFields,
    errors: &BTreeMap<String, String>,
    extra: Markup,
) -> Markup {
    html! {
        label {
            (label)
            input type="text" name=(name) value=(PlainText(field(values, name))) maxlength="200";
            (extra)
            @if let Some(e) = errors.get(name) { span class="field-error" { (PlainText(e)) } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct MarketQuery {
    market: Option<String>,
    action: Option<String>,
}

fn sample_form(
    state: &AppState,
    who: &Principal,
    sid: &str,
    market: &str,
    values: &FormFields,
    errors: &BTreeMap<String, String>,
) -> Markup {
    let suggested = format!(
        "{}-{}",
        market,
        Utc::now()
            .with_timezone(&state.utc_offset())
            .format("%Y%m%d-%H%M%S")
    );
    let mut values = values.clone();
    values
        .entry("sample_id".into())
        .or_insert_with(|| suggested.clone());
    let categories = state.judge().reference().categories();
    html! {
        (room_header(who, sid, market, "登记样品 Register a sample"))
        main { section {
            @for key in ["", "market", "sampled_at"] {
                @if let Some(e) = errors.get(key) { p class="error" { (PlainText(e)) } }
            }
            form method="post" action="/station/samples" class="stack" id="sample-form" {
                input type="hidden" name="csrf" value=(csrf_for(sid));
                input type="hidden" name="market" value=(PlainText(market));
                (input("sample_id", "样品编号 Sample no.", &values, errors, html! {}))
                (input("stall", "摊位 Stall", &values, errors, html! {}))
                (input("sample_name", "样品名称 Sample (commodity)", &values, errors, html! {}))
                label {
                    "类别 Category"
                    select name="category" {
                        option value="" { "—" }
                        @for c in categories {
                            @let id = c.id().as_str();
                            @let names: Vec<&str> = c.commodities().filter_map(|n| n.first().map(|s| &**s)).take(3).collect();
                            option value=(id) selected[field(&values, "category") == id] {
                                (id) @if !names.is_empty() { " (" (names.join("、")) ")" }
                            }
                        }
                    }
                    @if let Some(e) = errors.get("category") { span class="field-error" { (PlainText(e)) } }
                }
                (input("vendor", "经营者 Vendor", &values, errors, html! {}))
                (input("supplier", "供货商 Supplier", &values, errors, html! {}))
                (input("certificate_no", "合格证编号 Certificate no.", &values, errors, html! {}))
                button type="submit" class="big" { "登记 Register" }
                " " a class="button light" href={ "/station?market=" (url_encode(market)) } { "返回 Back" }
            }
        } }
    }
}

/// `GET /station/samples/new[?market=]`.
pub async fn new_sample(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<MarketQuery>, QueryRejection>,
) -> Response {
    let (who, sid) = match super::page_principal(
        &state,
        &headers,
        &uri,
        &TESTERS,
        "the testing room's forms are for station and contractor tokens.",
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let asked = query.ok().and_then(|Query(q)| q.market);
    let Some(market) = chosen_market(&who, asked.as_deref()) else {
        return message_page(
            StatusCode::FORBIDDEN,
            "No market",
            "This token covers no market.",
        );
    };
    let body = sample_form(
        &state,
        &who,
        &sid,
        &market,
        &FormFields::new(),
        &BTreeMap::new(),
    );
    room_page(StatusCode::OK, "登记样品 · foodgate", body)
}

/// `POST /station/samples`: the sample's registration, as `POST /api/v1/samples` makes it.
pub async fn register_sample(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let f = fields_of(form);
    let (who, sid) = match poster(&state, &headers, &uri, &f).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let market = field(&f, "market").to_string();
    let mut record = serde_json::Map::new();
    for k in [
        "sample_id",
        "market",
        "stall",
        "sample_name",
        "category",
        "vendor",
        "supplier",
        "certificate_no",
    ] {
        let v = field(&f, k).trim();
        if !v.is_empty() {
            record.insert(k.into(), v.into());
        }
    }
    record.insert(
        "sampled_at".into(),
        Utc::now()
            .with_timezone(&state.utc_offset())
            .to_rfc3339()
            .into(),
    );
    let body = serde_json::Value::Array(vec![record.into()]).to_string();
    let mut errors = BTreeMap::new();
    match crate::api::samples::register_body(&state, &who, body.into_bytes()).await {
        Ok(answer) => match answer.results.first() {
            Some(r) if r.status != "rejected" => {
                let id = r.id.clone().unwrap_or_default();
                return redirect(
                    &format!(
                        "/station?market={}&done=sample&id={}",
                        url_encode(&market),
                        url_encode(&id)
                    ),
                    &[],
                );
            }
            Some(r) => {
                for e in &r.errors {
                    errors.insert(e.field.clone(), e.message.clone());
                }
            }
            None => {
                errors.insert(String::new(), "nothing was registered".into());
            }
        },
        Err(e) => {
            errors.insert(String::new(), e.message.clone());
        }
    }
    if errors.is_empty() {
        errors.insert(String::new(), "the sample was not registered".into());
    }
    let shown = if who.covers(&market) {
        market
    } else {
        chosen_market(&who, None).unwrap_or_default()
    };
    let body = sample_form(&state, &who, &sid, &shown, &f, &errors);
    room_page(StatusCode::BAD_REQUEST, "登记样品 · foodgate", body)
}

/// The fields of each action's form: (name, label, kind).
fn action_fields(action: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match action {
        "stop_sale" => &[("operator", "操作人 Operator", "text")],
        "lab_sent" => &[
            ("lab", "检验机构 Laboratory", "text"),
            ("lab_sample_no", "送检样品编号 Lab sample no.", "text"),
        ],
        "lab_result" => &[
            ("result", "检验结果 Result", "result"),
            ("reference", "报告编号 Report no.", "text"),
        ],
        "destroy" => &[
            ("kg", "销毁数量 (公斤) Kilograms", "kg"),
            ("method", "处理方式 Method", "method"),
            ("witness", "见证人 Witness", "text"),
        ],
        "resample" => &[("reading", "复抽结果 Re-sample reading", "reading")],
        _ => &[],
    }
}

/// A candidate re-sample: (results API id, what the room reads).
type Candidate = (String, String);

fn action_form(
    hold: &HoldView,
    action: &str,
    csrf: &str,
    market: &str,
    values: &FormFields,
    candidates: &[Candidate],
) -> Markup {
    let v = |k: &str| field(values, k).to_string();
    html! {
        form method="post" action={ "/station/holds/" (url_encode(&hold.id)) "/actions" } class="stack"
            id={ "form-" (action) } {
            h3 { (action_label(action)) }
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="action" value=(action);
            input type="hidden" name="market" value=(PlainText(market));
            @for (name, label, kind) in action_fields(action) {
                label {
                    (label)
                    @match *kind {
                        "kg" => { input type="number" name=(name) step="0.01" min="0.01" inputmode="decimal" value=(PlainText(&v(name))); }
                        "result" => {
                            select name=(name) {
                                option value="positive" { "阳性 Positive (keep the hold)" }
                                option value="negative" { "阴性 Negative (release)" }
                            }
                        }
                        "method" => {
                            input type="text" name=(name) list="methods" value=(PlainText(&v(name)));
                            datalist id="methods" {
                                option value="深埋 Deep burial" {} option value="焚烧 Incineration" {}
                                option value="化学处理 Chemical treatment" {} option value="退回供货商 Returned to supplier" {}
                            }
                        }
                        "reading" => {
                            @if candidates.is_empty() {
                                input type="text" name=(name) value=(PlainText(&v(name))) placeholder="GET /api/v1/results id";
                            } @else {
                                select name=(name) {
                                    @for (id, text) in candidates {
                                        option value=(PlainText(id)) { (PlainText(text)) }
                                    }
                                }
                            }
                        }
                        _ => { input type="text" name=(name) value=(PlainText(&v(name))) maxlength="200"; }
                    }
                }
            }
            label { "备注 Note" input type="text" name="note" value=(PlainText(&v("note"))) maxlength="200"; }
            button type="submit" class="big" { "提交 Submit" }
        }
    }
}

/// The readings of the hold's stall since its failure: the re-samples one may name.
async fn candidates(state: &AppState, hold: &HoldView) -> Vec<Candidate> {
    let market = hold.market.clone();
    let rows = state
        .read(move |reader| {
            Ok(results::list(
                reader,
                &ResultsFilter {
                    market: Some(market),
                    date: None,
                    verdict: None,
                    analyte: None,
                    before: None,
                    scope: None,
                    limit: 300,
                },
            )?)
        })
        .await
        .unwrap_or_default();
    let failed_at = hold.reading["measured_at"].as_str().unwrap_or_default();
    let failed = chrono::DateTime::parse_from_rfc3339(failed_at).ok();
    rows.into_iter()
        .filter(|r| r.stall == hold.stall && hold.stall.is_some())
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.reading_json).ok()?;
            let at = v["measured_at"]
                .as_str()
                .unwrap_or(&r.received_at)
                .to_string();
            let later = match (chrono::DateTime::parse_from_rfc3339(&at).ok(), failed) {
                (Some(a), Some(f)) => a > f,
                _ => true,
            };
            let verdict = v["verdict"].as_str().unwrap_or_default();
            (later && matches!(verdict, "pass" | "fail")).then(|| {
                let text = format!(
                    "{} · {} · {} {} {} · {}",
                    room_time(&at, state.utc_offset()),
                    v["sample_name"].as_str().unwrap_or("—"),
                    item_name(state, v["analyte"].as_str().unwrap_or_default()),
                    v["value_text"].as_str().unwrap_or_default(),
                    v["unit"].as_str().unwrap_or_default(),
                    if verdict == "pass" {
                        "合格 pass"
                    } else {
                        "不合格 fail"
                    }
                );
                (r.identity, text)
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn hold_page(
    state: &AppState,
    who: &Principal,
    sid: &str,
    hold: &HoldView,
    only: Option<&str>,
    values: &FormFields,
    error: Option<&str>,
    candidates: &[Candidate],
) -> Markup {
    let csrf = csrf_for(sid);
    let shown: Vec<&str> = hold
        .actions
        .iter()
        .copied()
        .filter(|a| only.is_none_or(|o| o == *a))
        .collect();
    html! {
        (room_header(who, sid, &hold.market, "不合格处理 Hold"))
        main {
            @if let Some(e) = error { p class="error" id="error" { (PlainText(e)) } }
            section {
                h2 {
                    span class={ "tag " (hold.status.as_str()) } { (hold.status_zh) " " (hold.status.as_str()) }
                    @if hold.overdue_at.is_some() { " " span class="tag off" { "逾期 Overdue" } }
                }
                p { (PlainText(&hold_line(state, hold))) }
                @if let Some(kg) = hold.destroyed_kg { p { "已销毁 Destroyed: " (kg) " kg" } }
                ol class="history" {
                    @for e in &hold.history {
                        li {
                            (room_time(&e.at, state.utc_offset())) " · " (e.status.zh()) " · "
                            (e.action.as_deref().map(action_label).unwrap_or("")) " "
                            span class="muted" { (PlainText(&e.by)) ": " (PlainText(&e.reason)) }
                        }
                    }
                }
            }
            @if shown.is_empty() {
                section { p class="muted" { "现在没有可做的步骤 No step is open now." } }
            }
            @for a in &shown {
                section { (action_form(hold, a, &csrf, &hold.market, values, candidates)) }
            }
            p { a class="button light" href={ "/station?market=" (url_encode(&hold.market)) } { "返回 Back" } }
        }
    }
}

/// The hold `id` if `who` may see it.
async fn scoped(state: &AppState, who: &Principal, id: &str) -> Option<HoldView> {
    let hid = id.to_string();
    let hold = state
        .read(move |reader| Ok(load_hold(reader, &hid)?))
        .await
        .ok()
        .flatten()?;
    who.covers(&hold.market).then_some(hold)
}

fn no_hold() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "No such hold",
        "There is no such hold in this token's markets.",
    )
}

/// `GET /station/holds/{id}[?action=]`.
pub async fn hold(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    query: Result<Query<MarketQuery>, QueryRejection>,
) -> Response {
    let (who, sid) = match super::page_principal(
        &state,
        &headers,
        &uri,
        &TESTERS,
        "the testing room's forms are for station and contractor tokens.",
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(hold) = scoped(&state, &who, &id).await else {
        return no_hold();
    };
    let only = query.ok().and_then(|Query(q)| q.action);
    let candidates = candidates(&state, &hold).await;
    let body = hold_page(
        &state,
        &who,
        &sid,
        &hold,
        only.as_deref(),
        &FormFields::new(),
        None,
        &candidates,
    );
    room_page(StatusCode::OK, "不合格处理 · foodgate", body)
}

/// `POST /station/holds/{id}/actions`: one step, as `POST /api/v1/holds/{id}/actions`.
pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let f = fields_of(form);
    let (who, sid) = match poster(&state, &headers, &uri, &f).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(hold) = scoped(&state, &who, &id).await else {
        return no_hold();
    };
    let mut obj = serde_json::Map::new();
    for (k, v) in &f {
        let v = v.trim();
        if !matches!(k.as_str(), "csrf" | "market") && !v.is_empty() {
            obj.insert(k.clone(), v.into());
        }
    }
    let action = field(&f, "action").to_string();
    match crate::api::holds::act_on(&state, &who, &hold.id, &obj).await {
        Ok(_) => redirect(
            &format!(
                "/station?market={}&done={}&id={}",
                url_encode(&hold.market),
                url_encode(&action),
                url_encode(&hold.id)
            ),
            &[],
        ),
        Err(e) => {
            let message = match &e.field {
                Some(field) => format!("{} ({field})", e.message),
                None => e.message.clone(),
            };
            let hold = scoped(&state, &who, &id).await.unwrap_or(hold);
            let candidates = candidates(&state, &hold).await;
            let only = Some(action.as_str()).filter(|a| hold.actions.contains(a));
            let body = hold_page(
                &state,
                &who,
                &sid,
                &hold,
                only,
                &f,
                Some(&message),
                &candidates,
            );
            room_page(e.status, "不合格处理 · foodgate", body)
        }
    }
}

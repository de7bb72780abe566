//! Unsubscribe execution: one-click against a loopback HTTPS endpoint, mailto into the outbox,
//! manual links never visited, at-most-once under races, and the SSRF guard.

use axum::http::StatusCode;
use quietbox_core::service::{UnsubscribeRequest, UnsubscribeResult, UnsubscribeTargetRef};
use quietbox_core::store::{Decision, UnsubscribeMethod, UnsubscribeStatus};

use crate::support::{endpoint, newsletter, world_with_messages};

fn request(sender: &str) -> UnsubscribeRequest {
    UnsubscribeRequest {
        target: UnsubscribeTargetRef::Sender(sender.into()),
        dry_run: false,
        actor: "tester".into(),
    }
}

#[tokio::test]
async fn one_click_posts_the_rfc_8058_body_once() {
    let endpoint = endpoint(StatusCode::OK, None).await;
    let world = world_with_messages(&[newsletter(
        "news@a.example.com",
        &format!("<{}>", endpoint.url("/u/1")),
        true,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(request("news@a.example.com"))
        .await
        .unwrap();
    assert_eq!(
        (outcome.method, outcome.result),
        (UnsubscribeMethod::OneClick, UnsubscribeResult::Unsubscribed)
    );
    let received = endpoint.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/u/1");
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(received[0].body, "List-Unsubscribe=One-Click");
    // Asking again does nothing new.
    let again = world
        .quietbox
        .unsubscribe(request("news@a.example.com"))
        .await
        .unwrap();
    assert_eq!(again.result, UnsubscribeResult::AlreadyDone);
    assert_eq!(endpoint.received().len(), 1);
    let history = world
        .quietbox
        .history(Some("news@a.example.com"))
        .await
        .unwrap();
    assert_eq!(history[0].status, UnsubscribeStatus::Succeeded);
    let decisions = world.quietbox.state().sender_decisions().await.unwrap();
    assert_eq!(decisions[0].decision, Decision::Unsubscribed);
    assert!(
        world.quietbox.candidates().await.unwrap().is_empty(),
        "an unsubscribed sender is no longer a candidate"
    );
}

#[tokio::test]
async fn racing_requests_unsubscribe_exactly_once() {
    let endpoint = endpoint(StatusCode::OK, None).await;
    let world = world_with_messages(&[newsletter(
        "race@a.example.com",
        &format!("<{}>", endpoint.url("/race")),
        true,
    )]);
    world.quietbox.candidates().await.unwrap(); // scan once, so the racers only race the claim
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let quietbox = world.quietbox.clone();
        tasks.push(tokio::spawn(async move {
            quietbox
                .unsubscribe(request("race@a.example.com"))
                .await
                .unwrap()
        }));
    }
    let mut done = 0;
    for task in tasks {
        if task.await.unwrap().result == UnsubscribeResult::Unsubscribed {
            done += 1;
        }
    }
    assert_eq!(done, 1);
    assert_eq!(
        endpoint.received().len(),
        1,
        "the endpoint saw exactly one POST"
    );
}

#[tokio::test]
async fn a_failed_one_click_is_recorded_and_may_be_retried() {
    let endpoint = endpoint(StatusCode::INTERNAL_SERVER_ERROR, None).await;
    let world = world_with_messages(&[newsletter(
        "flaky@a.example.com",
        &format!("<{}>", endpoint.url("/f")),
        true,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(request("flaky@a.example.com"))
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::Failed);
    assert_eq!(outcome.detail.as_deref(), Some("HTTP 500"));
    let retry = world
        .quietbox
        .unsubscribe(request("flaky@a.example.com"))
        .await
        .unwrap();
    assert_eq!(
        retry.result,
        UnsubscribeResult::Failed,
        "a failure does not block a retry"
    );
    assert_eq!(endpoint.received().len(), 2);
    let entry = &world.quietbox.history(None).await.unwrap()[0];
    assert_eq!(
        entry.attempts.len(),
        4,
        "two claims and two failures recorded"
    );
}

#[tokio::test]
async fn mailto_unsubscribe_sends_the_lists_message_through_the_provider() {
    let world = world_with_messages(&[newsletter(
        "list@b.example.org",
        "<mailto:leave@b.example.org?subject=REMOVE%2042>",
        false,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(request("list@b.example.org"))
        .await
        .unwrap();
    assert_eq!(
        (outcome.method, outcome.result),
        (UnsubscribeMethod::Mailto, UnsubscribeResult::Unsubscribed)
    );
    let mails = world.sent_mails();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("To: leave@b.example.org") && mails[0].contains("Subject: REMOVE 42"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("From: owner@example.org"));
}

#[tokio::test]
async fn a_plain_link_is_recorded_for_the_owner_and_never_visited() {
    let endpoint = endpoint(StatusCode::OK, None).await;
    let world = world_with_messages(&[newsletter(
        "web@c.example.com",
        &format!("<{}>", endpoint.url("/prefs")),
        false,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(request("web@c.example.com"))
        .await
        .unwrap();
    assert_eq!(
        (outcome.method, outcome.result),
        (
            UnsubscribeMethod::Manual,
            UnsubscribeResult::ManualLinkRecorded
        )
    );
    assert_eq!(outcome.link, endpoint.url("/prefs"));
    assert!(endpoint.received().is_empty());
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let endpoint = endpoint(StatusCode::OK, None).await;
    let world = world_with_messages(&[newsletter(
        "dry@d.example.com",
        &format!("<{}>", endpoint.url("/d")),
        true,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(UnsubscribeRequest {
            dry_run: true,
            ..request("dry@d.example.com")
        })
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::WouldUnsubscribe);
    assert!(endpoint.received().is_empty());
    assert!(world.quietbox.history(None).await.unwrap().is_empty());
    // The candidate id from the dry run selects the same subscription.
    let by_id = UnsubscribeRequest {
        target: UnsubscribeTargetRef::Candidate(outcome.candidate_id),
        ..request("")
    };
    assert_eq!(
        world.quietbox.unsubscribe(by_id).await.unwrap().result,
        UnsubscribeResult::Unsubscribed
    );
}

#[tokio::test]
async fn one_click_to_a_metadata_address_is_refused_without_a_request() {
    let world = world_with_messages(&[newsletter(
        "evil@e.example.com",
        "<https://169.254.169.254/latest/meta-data>",
        true,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(request("evil@e.example.com"))
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::Failed);
    assert!(
        outcome.detail.as_deref().unwrap().contains("refused"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_redirect_into_a_private_range_is_refused() {
    let endpoint = endpoint(StatusCode::OK, Some("https://10.0.0.1/steal")).await;
    let world = world_with_messages(&[newsletter(
        "redir@f.example.com",
        &format!("<{}>", endpoint.url("/r")),
        true,
    )]);
    let outcome = world
        .quietbox
        .unsubscribe(request("redir@f.example.com"))
        .await
        .unwrap();
    assert_eq!(outcome.result, UnsubscribeResult::Failed);
    let detail = outcome.detail.unwrap();
    assert!(
        detail.contains("redirect refused") && detail.contains("10.0.0.1"),
        "{detail}"
    );
    assert_eq!(
        endpoint.received().len(),
        1,
        "only the first hop was contacted"
    );
}

#[tokio::test]
async fn a_host_resolving_to_loopback_is_refused_by_the_production_policy() {
    use quietbox_core::ports::{OneClickClient, OutboundError};
    use quietbox_gmail::outbound::{OutboundPolicy, SsrfGuardedClient};
    let client = SsrfGuardedClient::new(OutboundPolicy::public_only()).unwrap();
    for url in [
        "https://localhost/u",
        "https://127.0.0.1/u",
        "https://[::1]/u",
        "https://[::ffff:10.0.0.1]/u",
        "http://example.com/u",
    ] {
        let result = client.post_one_click(url).await;
        assert!(
            matches!(result, Err(OutboundError::Refused(_))),
            "{url}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_sender_or_a_sender_without_list_unsubscribe_is_a_clear_error() {
    use quietbox_core::service::CoreError;
    let world = world_with_messages(&[
        "From: friend@g.example.org\nSubject: hi\nDate: Mon, 23 Nov 2026 09:00:00 +0000\n"
            .to_owned(),
    ]);
    assert!(matches!(
        world
            .quietbox
            .unsubscribe(request("nobody@g.example.org"))
            .await,
        Err(CoreError::NotFound(_))
    ));
    assert!(matches!(
        world
            .quietbox
            .unsubscribe(request("friend@g.example.org"))
            .await,
        Err(CoreError::InvalidInput(_))
    ));
}

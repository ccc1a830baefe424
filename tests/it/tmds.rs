//! The TMDS client against the in-process fake: polling cadence, back-off, timeouts, body cap,
//! and what a failure leaves in the reading and in the error list.

use std::time::{Duration, Instant};

use vigil::judge::sample::{Millis, Source, SourceError, TaskReading};
use vigil::sources::tmds::{MAX_BODY_BYTES, TmdsClient};

use crate::fake_tmds::{Endpoint, FakeTmds, Reply};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const TOTAL_TIMEOUT: Duration = Duration::from_millis(500);

const FARGATE_TASK: &str = "fargate-task-real-2025-02.json";
const FARGATE_STATS: &str = "fargate-task-stats-real-2025-02.json";

async fn fargate() -> (FakeTmds, TmdsClient) {
    let tmds = FakeTmds::with_fixtures(FARGATE_TASK, FARGATE_STATS).await;
    let client = client_for(&tmds.base_url());
    (tmds, client)
}

fn client_for(base_url: &str) -> TmdsClient {
    TmdsClient::with_timeouts(base_url, CONNECT_TIMEOUT, TOTAL_TIMEOUT).expect("client")
}

/// One poll at `now`, returning the reading and the errors it reported.
async fn poll(client: &mut TmdsClient, now: Millis) -> (Option<TaskReading>, Vec<String>) {
    let mut errors: Vec<SourceError> = Vec::new();
    let reading = client.poll(now, &mut errors).await;
    assert!(errors.iter().all(|e| e.source == Source::Tmds), "{errors:?}");
    (reading, errors.into_iter().map(|e| e.detail).collect())
}

fn requests(tmds: &FakeTmds) -> (usize, usize) {
    (tmds.requests(Endpoint::Task), tmds.requests(Endpoint::Stats))
}

fn working_set(reading: &TaskReading, name: &str) -> Option<u64> {
    reading
        .containers
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.stats.as_ref())
        .and_then(|s| s.memory_working_set_bytes)
}

#[tokio::test]
async fn reads_a_fargate_task() {
    let (tmds, mut client) = fargate().await;
    let (reading, errors) = poll(&mut client, 0).await;
    assert_eq!(errors, Vec::<String>::new());
    let reading = reading.expect("a reading");
    assert!(!reading.stats_stale);
    assert_eq!(reading.family, "prom-ecs-exporter-sandbox-main-fargate");
    let names: Vec<&str> = reading.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["nonessential", "prometheus", "ecs-exporter"]);
    assert_eq!(working_set(&reading, "prometheus"), Some(75_550_720));
    assert_eq!(working_set(&reading, "ecs-exporter"), Some(45_010_944));
    // The stopped container's stats are `null`.
    assert_eq!(reading.containers[0].stats, None);
    assert_eq!(requests(&tmds), (1, 1));
}

#[tokio::test]
async fn polls_at_most_once_a_second_and_recognises_a_repeated_sample() {
    let (tmds, mut client) = fargate().await;
    let (first, _) = poll(&mut client, 0).await;
    let first = first.expect("a reading");

    // Too soon: the last reading again, marked stale, without a request.
    let (cached, errors) = poll(&mut client, 500).await;
    assert!(errors.is_empty());
    let cached = cached.expect("the cached reading");
    assert!(cached.stats_stale);
    assert_eq!(cached.containers, first.containers);
    assert_eq!(requests(&tmds), (1, 1));

    // A second later TMDS is asked again, and serves the same cached sample.
    let (again, _) = poll(&mut client, 1_000).await;
    assert!(again.expect("a reading").stats_stale);
    assert_eq!(requests(&tmds), (2, 2));

    // A new sample (a later `read` stamp) is fresh data.
    let newer = String::from_utf8(crate::fake_tmds::fixture(FARGATE_STATS))
        .expect("utf-8")
        .replace("2025-02-27T05:22:49.186680233Z", "2025-02-27T05:22:59.186680233Z");
    tmds.set_stats(newer);
    let (fresh, _) = poll(&mut client, 2_000).await;
    assert!(!fresh.expect("a reading").stats_stale);
    assert_eq!(requests(&tmds), (3, 3));
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let (tmds, mut client) = fargate().await;
    tmds.set_reply(Endpoint::Task, Reply::Delayed(Duration::from_secs(5)));
    let started = Instant::now();
    let (reading, errors) = poll(&mut client, 0).await;
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(reading, None);
    assert_eq!(errors, ["get /task: timed out after 500 ms"]);

    // A timeout is not a reason to back off: the next second polls again, and succeeds.
    tmds.set_reply(Endpoint::Task, Reply::Body);
    let (reading, errors) = poll(&mut client, 1_000).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(reading.is_some());
    assert_eq!(requests(&tmds), (2, 2));
}

#[tokio::test]
async fn a_body_that_stalls_times_out_and_the_task_survives() {
    let (tmds, mut client) = fargate().await;
    tmds.set_reply(Endpoint::Stats, Reply::StalledBody(Duration::from_secs(5)));
    let (reading, errors) = poll(&mut client, 0).await;
    assert_eq!(errors, ["get /task/stats: timed out after 500 ms"]);
    let reading = reading.expect("the task without stats");
    assert_eq!(reading.containers.len(), 3);
    assert!(reading.containers.iter().all(|c| c.stats.is_none()));
    assert_eq!(reading.network, None);
}

#[tokio::test]
async fn too_many_requests_backs_off_for_retry_after() {
    let (tmds, mut client) = fargate().await;
    assert!(poll(&mut client, 0).await.0.is_some());

    tmds.queue(Endpoint::Task, [Reply::TooManyRequests { retry_after_secs: Some(3) }]);
    let (reading, errors) = poll(&mut client, 1_000).await;
    assert_eq!(reading, None);
    assert_eq!(errors, ["get /task: http status 429"]);
    assert_eq!(requests(&tmds), (2, 2));

    // Backing off until 1 s + 3 s: the reading from 0 s stands in, marked stale.
    for now in [2_000, 3_000, 3_999] {
        let (cached, errors) = poll(&mut client, now).await;
        assert!(errors.is_empty());
        assert!(cached.expect("the cached reading").stats_stale);
    }
    assert_eq!(requests(&tmds), (2, 2));

    let (reading, errors) = poll(&mut client, 4_000).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(reading.is_some());
    assert_eq!(requests(&tmds), (3, 3));
}

#[tokio::test]
async fn server_errors_back_off_exponentially_until_success() {
    let (tmds, mut client) = fargate().await;
    tmds.set_reply(Endpoint::Task, Reply::Status(500));

    // Failures at 0 s, 2 s (after 2 s) and 6 s (after 4 s); nothing asked in between.
    let mut asked = 0;
    for (now, expect_request) in [
        (0, true),
        (1_000, false),
        (1_999, false),
        (2_000, true),
        (5_000, false),
        (6_000, true),
        (13_000, false),
    ] {
        let (reading, errors) = poll(&mut client, now).await;
        assert_eq!(reading, None, "at {now}");
        if expect_request {
            asked += 1;
            assert_eq!(errors, ["get /task: http status 500"], "at {now}");
        } else {
            assert!(errors.is_empty(), "at {now}: {errors:?}");
        }
        assert_eq!(tmds.requests(Endpoint::Task), asked, "at {now}");
    }

    // The next attempt is 8 s after the last; once it succeeds the normal cadence resumes.
    tmds.set_reply(Endpoint::Task, Reply::Body);
    assert!(poll(&mut client, 14_000).await.0.is_some());
    assert!(poll(&mut client, 15_000).await.0.is_some());
    assert_eq!(tmds.requests(Endpoint::Task), asked + 2);
}

#[tokio::test]
async fn a_stats_failure_still_yields_the_task_and_backs_off() {
    let (tmds, mut client) = fargate().await;
    tmds.set_reply(Endpoint::Stats, Reply::Status(503));
    let (reading, errors) = poll(&mut client, 0).await;
    assert_eq!(errors, ["get /task/stats: http status 503"]);
    let reading = reading.expect("the task");
    assert_eq!(reading.task_arn.rsplit('/').next(), Some("bae32def0ab64f06818e8862e58f8d6d"));
    assert!(reading.containers.iter().all(|c| c.stats.is_none()));
    assert_eq!(reading.cpu_limit_vcpus, Some(0.25));

    // A 5xx on either document backs off both.
    let (cached, _) = poll(&mut client, 1_000).await;
    assert!(cached.expect("the cached task").stats_stale);
    assert_eq!(requests(&tmds), (1, 1));
}

#[tokio::test]
async fn garbage_is_a_parse_error() {
    let (tmds, mut client) = fargate().await;
    tmds.set_reply(Endpoint::Task, Reply::Garbage);
    let (reading, errors) = poll(&mut client, 0).await;
    assert_eq!(reading, None);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("parse /task: "), "{errors:?}");

    // A parse error is not a reason to back off.
    tmds.set_reply(Endpoint::Task, Reply::Body);
    assert!(poll(&mut client, 1_000).await.0.is_some());
}

#[tokio::test]
async fn oversize_bodies_are_abandoned() {
    let (tmds, mut client) = fargate().await;
    let too_big = 2 * MAX_BODY_BYTES;
    // Streamed without a length: the cap is found while reading.
    tmds.set_reply(Endpoint::Task, Reply::Oversize { bytes: too_big, with_length: false });
    // Announced by `Content-Length`: refused before reading.
    tmds.set_reply(Endpoint::Stats, Reply::Oversize { bytes: too_big, with_length: true });
    let (reading, errors) = poll(&mut client, 0).await;
    assert_eq!(reading, None);
    assert_eq!(
        errors,
        ["get /task: body larger than 1048576 bytes", "get /task/stats: body larger than 1048576 bytes",]
    );
}

#[tokio::test]
async fn null_stats_are_no_stats() {
    let (tmds, mut client) = fargate().await;
    tmds.set_stats("null");
    let (reading, errors) = poll(&mut client, 0).await;
    assert!(errors.is_empty(), "{errors:?}");
    let reading = reading.expect("the task");
    assert_eq!(reading.containers.len(), 3);
    assert!(reading.containers.iter().all(|c| c.stats.is_none()));
    assert!(!reading.stats_stale);
}

#[tokio::test]
async fn the_cached_reading_expires_after_thirty_seconds() {
    let (tmds, mut client) = fargate().await;
    assert!(poll(&mut client, 0).await.0.is_some());

    // Retry-After 60 s is capped at 30 s.
    tmds.queue(Endpoint::Task, [Reply::TooManyRequests { retry_after_secs: Some(60) }]);
    assert_eq!(poll(&mut client, 1_000).await.0, None);
    assert!(poll(&mut client, 30_000).await.0.expect("30 s old").stats_stale);
    let (expired, errors) = poll(&mut client, 30_001).await;
    assert_eq!(expired, None);
    assert!(errors.is_empty());
    assert_eq!(requests(&tmds), (2, 2));
    // The back-off is over: TMDS is asked again.
    assert!(poll(&mut client, 31_000).await.0.is_some());
    assert_eq!(requests(&tmds), (3, 3));
}

#[tokio::test]
async fn other_endpoints_and_statuses() {
    let tmds = FakeTmds::start().await;
    // A fresh fake serves `{}`: a task with nothing in it, and no stats.
    let mut client = client_for(&tmds.base_url());
    let (reading, errors) = poll(&mut client, 0).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(reading.expect("an empty task").containers, []);

    // A 404 is reported but is no reason to back off.
    tmds.set_task_fixture("managed-instances-task-real-2026-09.json");
    tmds.set_stats_fixture("managed-instances-task-stats-real-2026-09.json");
    tmds.queue(Endpoint::Task, [Reply::Status(404)]);
    let (reading, errors) = poll(&mut client, 1_000).await;
    assert_eq!(reading, None);
    assert_eq!(errors, ["get /task: http status 404"]);
    let (reading, errors) = poll(&mut client, 2_000).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(reading.expect("a reading").launch_type, "MANAGED_INSTANCES");

    // Paths outside the two documents are unknown to the fake.
    let mut wrong = client_for(&format!("{}/elsewhere", tmds.base_url()));
    let (_, errors) = poll(&mut wrong, 0).await;
    assert_eq!(errors, ["get /task: http status 404", "get /task/stats: http status 404"]);
}

#[tokio::test]
async fn nothing_listening_is_a_reported_error() {
    // Bind, note the port, and close it again: connecting is then refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let mut client = client_for(&format!("http://{addr}/v4/gone"));
    let (reading, errors) = poll(&mut client, 0).await;
    assert_eq!(reading, None);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("get /task: "), "{errors:?}");
    assert!(errors[1].starts_with("get /task/stats: "), "{errors:?}");
    // The innermost cause, not the client library's wrapping of it.
    assert!(errors.iter().all(|e| e.contains("refused")), "{errors:?}");
}

#[tokio::test]
async fn a_service_gone_for_ten_minutes_is_an_error_every_poll_and_is_read_again_when_back() {
    // Time is the client's argument: ten minutes pass in a few hundred polls.
    let (tmds, mut client) = fargate().await;
    assert!(poll(&mut client, 0).await.0.is_some());
    tmds.go_away();
    let mut errors_seen = 0;
    for second in 1..=600 {
        let (reading, errors) = poll(&mut client, second * 1_000).await;
        errors_seen += errors.len();
        // A failed poll is no reading, and a refused connection is no reason to back off:
        // every poll asks again and reports why it failed.
        assert_eq!(reading, None, "at {second} s");
        // (The first may find its kept-alive connection reset instead.)
        let gone = |e: &String| e.contains("refused") || (second == 1 && e.contains("reset"));
        assert!(!errors.is_empty() && errors.iter().all(gone), "at {second} s: {errors:?}");
    }
    assert!(errors_seen >= 600, "{errors_seen} errors in 600 polls");
    tmds.come_back().await;
    let (reading, errors) = poll(&mut client, 601_000).await;
    assert!(errors.is_empty(), "{errors:?}");
    // The same stats sample as before the outage (the fixture did not change), so it is stale.
    assert!(!reading.expect("read again").containers.is_empty());
}

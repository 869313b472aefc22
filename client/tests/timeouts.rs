//! A daemon that accepts the connection and never answers: the client gives up within its
//! timeouts instead of waiting forever.

use std::time::{Duration, Instant};

use avocet_client::{Client, Timeouts};

#[tokio::test]
async fn a_server_that_never_answers_fails_the_call_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    // Accepts, reads nothing, writes nothing, and keeps every connection open.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        request: Duration::from_secs(1),
        keepalive: Duration::from_secs(1),
    };
    let clock = Instant::now();
    let call = async {
        let mut client = Client::connect_with(addr, timeouts).await?;
        client.list_fleets().await
    };
    // Bounded here too, so a client that would wait forever fails the test.
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the client was still waiting after 10 s");
    let waited = clock.elapsed();
    assert!(outcome.is_err(), "a silent server answered: {outcome:?}");
    assert!(
        waited < Duration::from_secs(5),
        "gave up only after {waited:?}"
    );
    silent.abort();
}

"""The example tests of the docs' testing page; run them with ``pytest docs/_examples``."""

import re
from urllib.parse import urlsplit

import pytest
import requests
from myapp import create_app

from flask_spark import logged_in
from flask_spark.testing import login_test_client
from flask_spark.testing.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_url():
    with RedisServer() as server:  # one real redis-server for the whole run
        yield server.url


@pytest.fixture
def app(spark_sandbox, spark_sandbox_config, redis_url):
    spark_sandbox.reset()  # fresh counters, tokens and faults for each test
    return create_app({"TESTING": True, "SPARK_REDIS_URL": redis_url, **spark_sandbox_config})


def test_dashboard_calls_the_api(app, spark_sandbox):
    client = app.test_client()
    user = login_test_client(client, "jane", sandbox=spark_sandbox)
    assert user.name == "Jane Appleseed"
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.json["account"] == "Jane Appleseed"
    assert spark_sandbox.counters()["api_calls"] == 2


def test_expired_token_is_refreshed_once(app, spark_sandbox):
    client = app.test_client()
    login_test_client(client, "bob", sandbox=spark_sandbox)
    spark_sandbox.expire_tokens()  # the next API call answers 401 with code 1020
    assert client.get("/dashboard").status_code == 200
    assert spark_sandbox.counters()["refreshes"] == 1


def test_rate_limited_call_is_retried(app, spark_sandbox):
    client = app.test_client()
    login_test_client(client, sandbox=spark_sandbox)
    spark_sandbox.faults(rate_limit_next=1)
    assert client.get("/dashboard").status_code == 200
    assert spark_sandbox.counters()["rate_limited"] == 1


def test_signed_out_visitor_is_sent_to_sign_in(app):
    response = app.test_client().get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"] == "/spark/login?next=/dashboard"


def test_sign_out(app, spark_sandbox):
    client = app.test_client()
    login_test_client(client, sandbox=spark_sandbox)
    page = client.get("/").get_data(as_text=True)  # the page with the sign-out form
    token = re.search(r'name="spark_csrf_token" value="([^"]+)"', page)[1]
    assert client.post("/spark/logout", data={"spark_csrf_token": token}).status_code == 302
    assert client.get("/dashboard").status_code == 302
    assert spark_sandbox.counters()["token_deletions"] == 1
    assert spark_sandbox.counters()["revocations"] == 1


def test_the_real_sign_in_flow(app, spark_sandbox):
    client = app.test_client()
    signed_in = []
    with logged_in.connected_to(lambda sender, user: signed_in.append(user.id), app):
        authorize = client.get("/spark/login?next=/dashboard").headers["Location"]
        # Post the sandbox's login and consent form, as the browser would.
        answer = requests.post(
            authorize,
            data={"member": "20150312145208261583000000", "consent": "allow"},
            allow_redirects=False,
            timeout=10,
        )
        callback = urlsplit(answer.headers["Location"])
        response = client.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert signed_in == ["20150312145208261583000000"]
    assert client.get("/dashboard").json["account"] == "Bob Martinez"

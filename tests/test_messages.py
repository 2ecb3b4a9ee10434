"""Every error a developer meets names what to fix: the setting, or the URL that failed."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from flask_spark.core.api import SparkAPI, StaticTokens
from flask_spark.core.config import load_config
from flask_spark.core.errors import ProviderError, SparkAPIError
from flask_spark.core.oidc import OIDCClient
from flask_spark.core.transactions import LoginTransaction
from flask_spark.sandbox import SandboxServer

from .helpers import closed_port


def test_a_refused_client_names_the_two_settings(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    cfg = load_config({**config, "SPARK_CLIENT_SECRET": "wrong"}, debug=False, testing=True)
    txn = LoginTransaction.begin(
        next_url="/", binding="b", redirect_uri="http://localhost/spark/callback"
    )
    with pytest.raises(ProviderError) as caught:
        OIDCClient(cfg).exchange_code("any", txn)
    assert caught.value.error == "invalid_client"
    assert "check SPARK_CLIENT_ID and SPARK_CLIENT_SECRET" in caught.value.message


def test_an_unreachable_provider_is_named_by_its_url(config: dict[str, Any]) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}"
    cfg = load_config({**config, "SPARK_ISSUER": issuer}, debug=False, testing=True)
    with pytest.raises(ProviderError, match=f"could not be reached at {issuer}/.well-known/"):
        OIDCClient(cfg).metadata()


def test_an_unreachable_api_is_named_by_its_url() -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1/"
    api = SparkAPI(
        base_url=base, user_agent="tests", tokens=StaticTokens("t"), http=requests.Session()
    )
    with pytest.raises(SparkAPIError, match=f"could not be reached at {base}"):
        api.get("my/account")

"""The app under test in the docs' testing page (``docs/testing.rst``)."""

import os

from flask import Flask, render_template_string

from flask_spark import SparkAuth, spark_api, spark_login_required

HOME = """
{% from "spark/macros.html" import login_button, logout_form %}
{% if spark_logged_in %}{{ logout_form() }}{% else %}{{ login_button() }}{% endif %}
"""


def create_app(config=None):
    app = Flask(__name__)
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("SPARK_")})
    app.config.update(config or {})
    SparkAuth(app)

    @app.get("/")
    def home():
        return render_template_string(HOME)

    @app.get("/dashboard")
    @spark_login_required
    def dashboard():
        account = spark_api.get("my/account").first()
        homes = spark_api.reso.get("Property", params={"$top": 5})
        return {"account": account["Name"], "homes": len(homes.value)}

    return app

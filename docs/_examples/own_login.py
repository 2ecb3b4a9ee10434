"""Two apps with a login of their own, beside "Sign in with Flexmls" (docs/own-login.rst)."""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request, session
from flask_login import LoginManager, UserMixin, login_user, logout_user

from flask_spark import SparkAuth, spark_login_required, spark_user

PASSWORDS = {"ann": "secret"}  # stands in for the app's user table


def create_plain_app(config: dict[str, Any]) -> Flask:
    """The Flask tutorial's way: the signed-in user is ``session["user_id"]``."""
    app = Flask(__name__)
    app.config.update(config)
    SparkAuth(app)

    @app.post("/login")
    def login() -> Any:
        if PASSWORDS.get(request.form["username"]) != request.form["password"]:
            return "wrong password", 400
        session.clear()  # flask-spark gives the session a new id: a planted one is not kept
        session["user_id"] = request.form["username"]
        return redirect("/")

    @app.post("/logout")
    def logout() -> Any:
        session.clear()  # ends the Flexmls sign-in too: its tokens are revoked
        return redirect("/")

    add_common_views(app, lambda: session.get("user_id"))
    return app


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def create_flask_login_app(config: dict[str, Any]) -> Flask:
    """Flask-Login: ``login_user`` and ``logout_user`` get a new session id from flask-spark."""
    app = Flask(__name__)
    app.config.update(config)
    login_manager = LoginManager(app)
    login_manager.user_loader(lambda name: User(name) if name in PASSWORDS else None)
    SparkAuth(app)

    @app.post("/login")
    def login() -> Any:
        if PASSWORDS.get(request.form["username"]) != request.form["password"]:
            return "wrong password", 400
        login_user(User(request.form["username"]))
        return redirect("/")

    @app.post("/logout")
    def logout() -> Any:
        logout_user()  # ends the Flexmls sign-in too; the cart stays
        return redirect("/")

    from flask_login import current_user

    add_common_views(app, lambda: current_user.get_id())
    return app


def add_common_views(app: Flask, who: Any) -> None:
    @app.get("/")
    def home() -> dict[str, Any]:
        return {"user": who(), "flexmls": spark_user.name, "cart": session.get("cart", [])}

    @app.post("/cart/<item>")
    def add_to_cart(item: str) -> Any:
        session["cart"] = [*session.get("cart", []), item]
        return redirect("/")

    @app.get("/listings")
    @spark_login_required
    def listings() -> str:
        return f"listings of {spark_user.name}"

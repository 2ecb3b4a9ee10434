"""Recipe (docs/recipes.rst): link a Flexmls sign-in to the app's own users with Flask-Login.

The app keeps its own ``User`` table (Flask-SQLAlchemy) and Flask-Login's ``current_user``;
flask-spark does the sign-in. A ``logged_in`` handler finds or creates the row of the Flexmls
member (by the stable ``sub``) and calls ``login_user``; a ``logged_out`` handler calls
``logout_user``. ``tests/test_neighbours.py`` runs this very file.
"""

from __future__ import annotations

from flask import Flask, has_request_context
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_spark import SparkAuth, SparkUser, logged_in, logged_out


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
spark = SparkAuth()


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    flexmls_sub: Mapped[str] = mapped_column(unique=True)  # the member's stable Flexmls id
    name: Mapped[str]
    email: Mapped[str | None]


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def link_flexmls_user(app: Flask, user: SparkUser, **extra: object) -> None:
    """Signed in with Flexmls: find or create the app's user, and log them in with Flask-Login."""
    account = db.session.execute(
        db.select(User).filter_by(flexmls_sub=user.id)
    ).scalar_one_or_none()
    if account is None:
        account = User(flexmls_sub=user.id, name=user.name or "", email=user.email)
        db.session.add(account)
    else:  # keep the profile in step with Flexmls
        account.name, account.email = user.name or account.name, user.email
    db.session.commit()
    login_user(account)  # no remember=True: the Flexmls session decides how long this lasts


def unlink_flexmls_user(app: Flask, reason: str, **extra: object) -> None:
    """Signed out with flask-spark in this browser: end Flask-Login's login here too.

    Other reasons ("backchannel", "everywhere") come from another request (the provider's, an
    admin's) or from a job: the member's server-side session, where Flask-Login keeps its
    user id, is deleted then, and with it that login.
    """
    if reason in ("logout", "frontchannel") and has_request_context():
        logout_user()


def create_app(config: dict[str, object] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    db.init_app(app)
    login_manager.init_app(app)
    spark.init_app(app)
    logged_in.connect(link_flexmls_user, app)
    logged_out.connect(unlink_flexmls_user, app)
    with app.app_context():
        db.create_all()

    @app.get("/me")
    @login_required  # Flask-Login's decorator: the app's own user
    def me() -> dict[str, object]:
        return {"id": current_user.id, "sub": current_user.flexmls_sub, "name": current_user.name}

    return app

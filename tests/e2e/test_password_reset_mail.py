"""Password reset on a real Daphne with `EMAIL_URL=filemail://…`: the mail is
a file (what tests and operators without SMTP read), its link sets a new
password, and the new password logs in. In-process tests use Django's
in-memory outbox whatever EMAIL_URL says; this one checks the setting itself."""

import re

import pytest
import requests

from tests import support

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-Passphrase-42"
NEW_PASSWORD = "another-long-Passphrase-77"


def form_post(session, url, data):
    session.get(url, timeout=10)
    token = session.cookies.get("csrftoken")
    return session.post(
        url,
        data={**data, "csrfmiddlewaretoken": token},
        headers={"Referer": url},
        allow_redirects=False,
        timeout=10,
    )


def test_a_mailed_link_sets_a_new_password_that_logs_in(tmp_path):
    mail_dir = tmp_path / "mail"
    env = {"EMAIL_URL": f"filemail://{mail_dir}", "DEFAULT_FROM_EMAIL": "chat@example.test"}
    with support.Server(env=env) as server:
        base = server.base_url
        signup = {
            "username": "forgetful",
            "email": "forgetful@example.test",
            "password1": PASSWORD,
            "password2": PASSWORD,
        }
        assert form_post(requests.Session(), f"{base}/accounts/signup/", signup).status_code == 303
        asked = form_post(
            requests.Session(), f"{base}/accounts/password_reset/", {"email": signup["email"]}
        )
        assert asked.status_code == 302
        [mail_file] = list(mail_dir.iterdir())
        text = mail_file.read_text()
        assert "To: forgetful@example.test" in text and "From: chat@example.test" in text
        link = re.search(rf"{re.escape(base)}/accounts/reset/\S+/", text).group(0)
        session = requests.Session()
        opened = session.get(link, timeout=10)  # Django moves the token to the session
        assert opened.status_code == 200 and "Choose a new password" in opened.text
        token = session.cookies.get("csrftoken")
        done = session.post(
            opened.url,
            data={
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": opened.url},
            allow_redirects=False,
            timeout=10,
        )
        assert done.status_code == 302 and done.headers["Location"] == "/accounts/reset/done/"
        login = form_post(
            requests.Session(),
            f"{base}/accounts/login/",
            {"username": "forgetful", "password": NEW_PASSWORD},
        )
        assert login.status_code == 302 and login.headers["Location"] == "/chat/"

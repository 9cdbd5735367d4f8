"""setup_demo: the demo base seeded once, and the admin login created once and always printed."""
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from crm.models import Customer
from tests import factories


@pytest.fixture
def login_file(tmp_path):
    return tmp_path / "var" / "admin_login.txt"


def setup_demo(login_file, *args):
    out = StringIO()
    call_command("setup_demo", "--customers", "25", "--login-file", str(login_file), *args, stdout=out)
    return out.getvalue()


def printed_password(output):
    return re.search(r"password: (\S+)", output).group(1)


def test_setup_demo_seeds_once_and_prints_the_same_login_every_time(db, login_file, client):
    # given an empty database, when setup_demo runs twice
    first = setup_demo(login_file)
    counts = (Customer.objects.count(), get_user_model().objects.count())
    second = setup_demo(login_file)

    # then the base was seeded once, the admin created once, and the same login printed both times
    assert counts[0] == 25
    assert (Customer.objects.count(), get_user_model().objects.count()) == counts
    assert "no demo data added" in second
    for output in (first, second):
        assert "http://127.0.0.1:8000/admin/" in output
        assert "username: admin" in output
    password = printed_password(first)
    assert printed_password(second) == password
    # and the printed password logs in, and is the one kept in the login file
    assert client.login(username="admin", password=password)
    assert f"password: {password}" in login_file.read_text()
    assert login_file.stat().st_mode & 0o077 == 0


def test_setup_demo_recreates_the_admin_from_the_login_file_on_a_fresh_database(db, login_file, client):
    # given a login file left from an earlier database, and no users
    login_file.parent.mkdir(parents=True)
    login_file.write_text("url: http://127.0.0.1:8000/admin/\nusername: admin\npassword: kept-Secret-42\n")

    # when setup_demo runs
    output = setup_demo(login_file)

    # then the admin is created with that password, which is printed
    assert printed_password(output) == "kept-Secret-42"
    assert client.login(username="admin", password="kept-Secret-42")
    assert get_user_model().objects.get(username="admin").is_superuser


def test_setup_demo_leaves_an_existing_base_alone(db, login_file):
    # given a database with a customer of its own
    factories.CustomerFactory(first_name="Real", last_name="Customer")

    # when setup_demo runs
    output = setup_demo(login_file)

    # then no demo data is added, but the login is still printed
    assert Customer.objects.count() == 1
    assert "no demo data added" in output
    assert "username: admin" in output


def test_setup_demo_does_not_reset_an_admin_it_did_not_create(db, login_file):
    # given an admin created by hand, with no login file
    user = get_user_model().objects.create_superuser("admin", "a@example.com", "my-own-pass-1")

    # when setup_demo runs
    output = setup_demo(login_file)

    # then the password is left as it was and the output says how to set one
    user.refresh_from_db()
    assert user.check_password("my-own-pass-1")
    assert "password: (unknown)" in output
    assert "changepassword admin" in output
    assert not login_file.exists()


def test_setup_demo_prints_the_login_even_when_quiet(db, login_file):
    output = setup_demo(login_file, "-v", "0")

    assert "username: admin" in output
    assert "customers:" not in output


def test_setup_demo_runs_the_first_scan_so_the_queue_has_groups(db, login_file):
    # given an empty database, when setup_demo seeds it
    from crm.models import Deal, Lead
    from dedup.models import DuplicateGroup, ScanRun

    output = setup_demo(login_file)

    # then one scan has run and the review queue has the planted duplicates' groups, as the output says
    run = ScanRun.objects.get()
    assert run.status == ScanRun.Status.DONE
    open_groups = DuplicateGroup.objects.filter(status=DuplicateGroup.Status.OPEN).count()
    assert open_groups > 0
    assert f"first scan: {open_groups} duplicate groups" in output
    # and the demo has repeat inquiries: a returning customer's lost repeat deal, and the customer writing again
    inquiries = Lead.objects.filter(is_repeat=True, is_repeat_inquiry=True)
    assert inquiries.filter(stage__semantic="open").exists()
    assert Deal.objects.filter(is_repeat_inquiry=True, stage__semantic="lost", source_lead__in=inquiries).exists()
    assert "repeat inquiries: " in output

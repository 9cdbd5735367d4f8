"""The site snippet in a real browser: it sets the visitor cookie on the customer's site and sends it along."""
import json
import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

SHOP = "http://shop.test"


def test_snippet_sets_the_cookie_and_adds_it_to_forms_and_lead_posts(live_server, new_page):
    # given a customer's page (served by the browser itself) with the snippet from the CRM and a form
    page = new_page()
    sent = {}
    html = (
        '<html><body><script src="/snippet.js"></script>'
        '<form method="post" action="/contact"><input name="name" value="Ivan"><button>Send</button></form>'
        "</body></html>"
    )
    page.route(f"{SHOP}/", lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    # The CRM serves the snippet; the page gets it through its own origin here because Chromium keeps a public
    # page (shop.test) from loading scripts off the private network the test server listens on.
    served = {}

    def snippet(route):
        response = route.fetch(url=f"{live_server.url}/static/crm/snippet.js")
        served["status"], served["type"] = response.status, response.headers.get("content-type", "")
        route.fulfill(response=response)

    page.route(f"{SHOP}/snippet.js", snippet)
    page.route(f"{SHOP}/contact", lambda route: (sent.update(form=route.request.post_data),
                                                 route.fulfill(status=200, body="ok")))
    page.route(f"{SHOP}/api/leads/", lambda route: (sent.update(api=route.request.post_data,
                                                               header=route.request.headers.get("x-visitor-id")),
                                                    route.fulfill(status=201, body="{}")))

    page.goto(f"{SHOP}/")
    page.wait_for_function("window.mergewiseVisitorId !== undefined")
    assert served["status"] == 200 and "javascript" in served["type"]

    # then the page's own site has the cookie, a random id the intake accepts
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies(SHOP)}
    visitor = cookies["mw_vid"]["value"]
    assert re.fullmatch(r"[0-9a-f]{32}", visitor)
    assert cookies["mw_vid"]["sameSite"] == "Lax" and cookies["mw_vid"]["expires"] > 0

    # and a JSON post to /api/leads/ carries it in the body and the header
    page.evaluate("fetch('/api/leads/', {method: 'POST', body: JSON.stringify({name: 'Ivan'}), "
                  "headers: {'Content-Type': 'application/json'}})")
    page.wait_for_function("true")
    page.wait_for_timeout(300)
    assert json.loads(sent["api"]) == {"name": "Ivan", "visitor_id": visitor}
    assert sent["header"] == visitor

    # and a submitted form carries it as a field
    page.click("button")
    page.wait_for_timeout(300)
    assert f"visitor_id={visitor}" in sent["form"]

    # and the same browser keeps its id on the next visit
    page.goto(f"{SHOP}/")
    page.wait_for_function("window.mergewiseVisitorId !== undefined")
    assert page.evaluate("window.mergewiseVisitorId") == visitor

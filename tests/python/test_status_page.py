"""The status page (GET /) in a real browser: Debian's chromium, headless, driven by Selenium
through Debian's chromedriver (Selenium Manager never downloads anything here).

Against `respawn serve` with the fake worker, the page must show the worker's pid from its live
feed (GET /admin/events), put a recycle on its timeline after the graceful-recycle button, change
a policy knob through its form (read back from GET /admin/policy), show the server's validation
error for an invalid value, and log no console errors of its own. A screenshot is saved
($RESPAWN_STATUS_PAGE_SCREENSHOT, else respawn-status-page.png in the system's temp dir; the
path is printed).

Skipped (77) when selenium, /usr/bin/chromium or /usr/bin/chromedriver is missing.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import respawn_harness as h  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"SKIPPED: {path} is not installed (Debian's chromium and chromium-driver)",
                  flush=True)
            sys.exit(h.SKIP)


def make_driver(profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={profile_dir}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--proxy-server=direct://", "--proxy-bypass-list=*"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options)


class StatusPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(["--worker-bin", os.path.join(h.Paths.bin_dir, "respawn-fake-worker"),
                               "--model", h.model_path("demo.pt")])
        cls.profile = tempfile.mkdtemp(prefix="respawn-chromium-")
        try:
            cls.driver = make_driver(cls.profile)
        except BaseException:
            cls.server.close()
            shutil.rmtree(cls.profile, ignore_errors=True)
            raise
        cls.driver.set_page_load_timeout(30)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            cls.server.close()
            shutil.rmtree(cls.profile, ignore_errors=True)

    def admin(self, method, target, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, _, data = self.server.request(method, target, body, headers)
        return status, json.loads(data or b"null")

    def wait(self, what, condition, timeout=20):
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            lambda d: condition(d), message=what)

    def text(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def test_the_page_live(self):
        from selenium.webdriver.common.by import By

        driver = self.driver
        driver.get(f"http://{self.server.url}/")
        self.assertEqual(driver.title, "respawn status")

        # The live feed: the worker's pid, as GET /admin/workers has it.
        status, workers = self.admin("GET", "/admin/workers")
        self.assertEqual(status, 200)
        pid = str(workers["pid"])
        self.wait("the worker pid", lambda d: self.text("#worker-pid") == pid)
        self.wait("the live badge", lambda d: self.text("#conn") == "live")

        # Graceful recycle: a recycle on the timeline, then a new worker.
        driver.find_element(By.ID, "recycle-graceful").click()
        self.wait("a recycle on the timeline",
                  lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline li[data-kind="recycle"]'))
        entry = self.text('#timeline li[data-kind="recycle"]')
        self.assertIn("pid " + pid, entry)
        self.assertIn("operator", entry)
        self.wait("the next worker", lambda d: self.text("#worker-pid") not in ("-", pid))
        self.wait("its start on the timeline",
                  lambda d: d.find_elements(By.CSS_SELECTOR,
                                            '#timeline li[data-kind="worker_ready"]'))

        # A knob through the form, read back from the server.
        field = self.wait("the policy form",
                          lambda d: d.find_element(By.ID, "policy-max_requests"))
        field.clear()
        field.send_keys("123")
        driver.find_element(By.ID, "policy-submit").click()
        self.wait("max_requests applied",
                  lambda d: self.admin("GET", "/admin/policy")[1]["max_requests"] == 123)
        self.wait("the form shows it",
                  lambda d: d.find_element(By.ID, "policy-max_requests").get_attribute("value")
                  == "123" and "applied" in self.text("#policy-result"))

        # An invalid value: the server's own error text is shown.
        _, expected = self.admin("PATCH", "/admin/policy", {"hang_timeout_ms": 1})
        self.assertIn("hang_timeout_ms", expected["error"])
        field = driver.find_element(By.ID, "policy-hang_timeout_ms")
        field.clear()
        field.send_keys("1")
        driver.find_element(By.ID, "policy-submit").click()
        self.wait("the validation error", lambda d: self.text("#policy-error") == expected["error"])
        self.assertEqual(self.admin("GET", "/admin/policy")[1]["hang_timeout_ms"], 30000)

        # Stats arrive every second.
        self.wait("stats", lambda d: self.text("#queue-depth") == "0"
                  and self.text("#throughput") != "-")
        time.sleep(1.2)

        path = os.environ.get("RESPAWN_STATUS_PAGE_SCREENSHOT") or os.path.join(
            tempfile.gettempdir(), "respawn-status-page.png")
        driver.save_screenshot(path)
        print(f"screenshot: {path}", flush=True)

        # No console errors of the page's own. The refused PATCH above is logged by the browser
        # as a failed resource load (400): that one was asked for.
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"
                  and not ("/admin/policy" in e.get("message", "") and "400" in e.get("message", ""))]
        self.assertEqual(errors, [])


if __name__ == "__main__":
    h.require("selenium")
    require_browser()
    h.main()

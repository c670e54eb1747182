#!/usr/bin/env python3
"""Drives iotd's web console in a real headless Chromium (selenium + chromium-driver), as a user would.

Usage: console_browser.py BASE_URL TENANT USERNAME PASSWORD DEVICE ARTIFACTS_DIR

Signs in with the identity login, opens the tenant overview, the online devices (searched for the device) and the device, waits for the
device's chart to draw live points from the WebSocket feed, opens the alarms and acknowledges the first open
alarm, saves a rule (first with a value the API refuses, shown at its field) and a joint rule as JSON, adds a
statistics job and opens its results, runs a report and sees its files, opens the notification outbox and
the transports, and shows a big screen with live points. Saves a screenshot of each page in ARTIFACTS_DIR. Prints one JSON line per step and a last line
`RESULT {...}` with the live points seen, the bytes the console's first load transferred and the browser
console's errors (each must be none). Exits 1 when a step fails.
"""
import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, tenant, username, password, device, artifacts = sys.argv[1:7]
os.makedirs(artifacts, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
result = {"steps": [], "errors": []}


def step(name):
    driver.save_screenshot(os.path.join(artifacts, name + ".png"))
    result["steps"].append(name)
    print(json.dumps({"step": name, "url": driver.current_url}), flush=True)


def browser_errors():
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


try:
    driver.get(base + "/")  # the management address itself leads to the console
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    result["firstLoadBytes"] = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0)")
    step("signin")
    driver.find_element(By.ID, "tenant").send_keys(tenant)
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin").click()
    wait.until(EC.presence_of_element_located((By.ID, "device-count")))
    result["overview"] = {name: driver.find_element(By.ID, name).text for name in ("device-count", "online-count", "offline-count")}
    step("overview")

    # The device list: the server filters (online only) and searches; the device is listed online.
    driver.find_element(By.LINK_TEXT, "online").click()
    wait.until(EC.presence_of_element_located((By.ID, "device-total")))
    driver.find_element(By.ID, "search").send_keys(device)
    wait.until(lambda d: d.find_element(By.ID, "device-total").text.endswith(" of 1 devices"))
    row = driver.find_element(By.XPATH, "//a[text()='%s']/ancestor::tr" % device)
    result["listedStatus"] = row.find_element(By.CSS_SELECTOR, ".badge").text
    step("devices")
    driver.find_element(By.LINK_TEXT, device).click()
    wait.until(EC.presence_of_element_located((By.ID, "chart")))
    wait.until(lambda d: d.execute_script("return window.iotdConsole.live") >= 3)
    result["livePoints"] = driver.execute_script("return window.iotdConsole.live")
    result["chartPoints"] = driver.execute_script("return window.iotdConsole.chart.data.datasets[0].data.length")
    step("device")

    driver.find_element(By.LINK_TEXT, "Alarms").click()
    button = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button.ack")))
    result["alarm"] = button.get_attribute("data-alarm")
    button.click()
    wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "button.ack[data-alarm='%s']" % result["alarm"])))
    step("alarms")

    # Rules: the API's validation error is shown at its field; corrected, the rule is saved and listed.
    result["errors"] += [entry["message"] for entry in browser_errors()]
    driver.find_element(By.LINK_TEXT, "Rules").click()
    wait.until(EC.presence_of_element_located((By.ID, "rule-form")))
    form = driver.find_element(By.ID, "rule-form")
    form.find_element(By.NAME, "id").send_keys("too-cold")
    form.find_element(By.NAME, "signal").send_keys("temperature")
    form.find_element(By.NAME, "min").send_keys("5")
    hysteresis = form.find_element(By.NAME, "hysteresis")
    hysteresis.clear()
    hysteresis.send_keys("-1")
    driver.find_element(By.ID, "save-rule").click()
    shown = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".field-error[data-field='hysteresis']")))
    result["fieldError"] = shown.text
    step("rule-invalid")
    # The refused request is the only thing the browser reports.
    refused = [entry["message"] for entry in browser_errors()]
    result["errors"] += [m for m in refused if not ("/rules" in m and "status of 400" in m)]
    hysteresis = driver.find_element(By.NAME, "hysteresis")
    hysteresis.clear()
    hysteresis.send_keys("0.5")
    driver.find_element(By.ID, "save-rule").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[text()='too-cold']")))
    # A joint rule (a Lua condition) from the JSON editor's template.
    driver.find_element(By.ID, "rule-json-save").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[text()='hot-while-humid']")))
    step("rules")

    # A statistics job from its form, then its results.
    driver.find_element(By.LINK_TEXT, "Statistics").click()
    form = wait.until(EC.presence_of_element_located((By.ID, "statistics-form")))
    form.find_element(By.NAME, "id").send_keys("hourly")
    parameters = form.find_element(By.NAME, "parameters")
    parameters.clear()
    parameters.send_keys('[{"name": "peak", "device": "%s", "signal": "temperature", "reducer": "max"}]' % device)
    driver.find_element(By.ID, "save-job").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[text()='hourly']")))
    driver.find_element(By.XPATH, "//td[text()='hourly']/ancestor::tr//button[text()='Results']").click()
    wait.until(EC.presence_of_element_located((By.ID, "results-csv")))
    step("statistics")

    # The report the test defined through the API, run now: its files are listed.
    driver.find_element(By.LINK_TEXT, "Reports").click()
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button.run-report"))).click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "button.run-file")))
    result["reportFiles"] = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "button.run-file")]
    step("reports")

    driver.find_element(By.LINK_TEXT, "Notifications").click()
    wait.until(EC.presence_of_element_located((By.ID, "outbox-status")))
    step("outbox")
    driver.find_element(By.LINK_TEXT, "Transports").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//h2[text()='CoAP observations']")))
    wait.until(lambda d: len(d.find_elements(By.XPATH, "//h2[text()='CoAP observations']/following-sibling::div[1]/*")) > 0)
    step("transports")

    # The big screen the test made through the API: values, a gauge, a chart with live points, alarms, status.
    driver.find_element(By.LINK_TEXT, "Screens").click()
    wait.until(EC.presence_of_element_located((By.LINK_TEXT, "Boiler room"))).click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".tile-value .screen-value").text not in ("", "…"))
    wait.until(lambda d: d.execute_script("return window.iotdConsole.live") >= 2)
    wait.until(lambda d: "online" in d.find_element(By.CSS_SELECTOR, ".tile-status").text)
    result["screenValue"] = driver.find_element(By.CSS_SELECTOR, ".tile-value .screen-value").text
    step("screen")
    driver.find_element(By.ID, "exit-screen").click()
    wait.until(EC.presence_of_element_located((By.ID, "screen-json")))

    driver.find_element(By.ID, "signout").click()
    wait.until(EC.presence_of_element_located((By.ID, "username")))
    step("signed-out")
    result["errors"] += [entry["message"] for entry in browser_errors()]
    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if not result["errors"] else 1)
except Exception as error:  # the step that failed, the page and the browser's console
    driver.save_screenshot(os.path.join(artifacts, "failure.png"))
    result["failure"] = "%s: %s" % (type(error).__name__, error)
    result["page"] = driver.page_source[:2000]
    result["errors"] += [entry["message"] for entry in browser_errors()]
    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(1)
finally:
    driver.quit()

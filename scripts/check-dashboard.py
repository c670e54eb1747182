#!/usr/bin/env python3
"""Checks the Grafana dashboards in Examples/grafana: each is valid JSON with `panels`, its panel ids are unique,
and every panel (rows aside) has a datasource and at least one target with an `expr`. Every metric name in those
expressions (and in the `label_values(…)` of the query variables) must be one that the code emits: a string
literal in a Swift file under Sources/, a per-item gauge built by concatenation (`"iot_mqtt_client_" + name`
with the names listed in the same function), or one of the four of Hummingbird's MetricsMiddleware. A histogram's
`_bucket`, `_sum` and `_count` series count as its name. Exits 1 naming each unknown metric and its panel.

    scripts/check-dashboard.py [FILE ...]     default: Examples/grafana/*.json
"""
import glob, json, os, re, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)
files = sys.argv[1:] or sorted(glob.glob("Examples/grafana/*.json"))
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
# MetricsMiddleware's labels (hb.requests, …) as IoTPlatform.metricsFactory renders them for Prometheus.
HUMMINGBIRD = {"hb_requests", "hb_request_errors", "http_server_request_duration", "http_server_active_requests"}
# PromQL words that are not metric names: aggregations, keywords and functions (followed by "(" anyway).
PROMQL = set("""sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
by without on ignoring group_left group_right bool and or unless offset start end atan2 inf nan le
abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year
days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
histogram_stddev histogram_stdvar histogram_sum hour idelta increase irate label_join label_replace ln log2 log10
minute month predict_linear rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt time
timestamp vector year avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time
stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time acos acosh asin asinh atan atanh
cos cosh sin sinh tan tanh deg rad pi holt_winters double_exponential_smoothing""".split())
SUFFIXES = ("_bucket", "_sum", "_count")


def emitted_names():
    """The metric names the code can emit: every identifier-like string literal of Sources/**/*.swift, and each
    `"prefix_" + name` with the names of the `("name", value)` tuples written above it in its function (the
    `dims`/`dimensions` lines, which hold labels, aside)."""
    literals, families = set(), set()
    for path in glob.glob("Sources/**/*.swift", recursive=True):
        text = open(path, encoding="utf-8").read()
        literals |= set(re.findall(r'"(' + NAME + r')"', text))
        for m in re.finditer(r'"(' + NAME + r'_)"\s*\+\s*\w+', text):
            body = text[text.rfind("func ", 0, m.start()):m.start()]
            for line in body.split("\n"):
                if "dims" not in line and "dimensions" not in line:
                    families |= {m.group(1) + s for s in re.findall(r'\(\s*"([a-z0-9_]+)"\s*,', line)}
    return literals | families | HUMMINGBIRD


def metric_names(expr):
    """The metric names of a PromQL expression: identifiers outside strings, label matchers, ranges and
    by/without/on/ignoring lists that are neither called (followed by "(") nor PromQL words; plus the names
    of a `__name__` matcher."""
    names = set()
    for m in re.finditer(r'__name__\s*=~?\s*"([^"]*)"', expr):
        names |= {n for n in m.group(1).split("|") if re.fullmatch(NAME, n)}
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    e = re.sub(r"\$\{[^}]*\}|\$\w+", " ", e)  # dashboard variables: $__rate_interval, ${tenant}
    e = re.sub(r"\{[^}]*\}", "{}", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    for m in re.finditer(r"(?<![\w:.])(" + NAME + r")(?=\s*(.?))", e):
        if m.group(2) != "(" and m.group(1) not in PROMQL:
            names.add(m.group(1))
    return names


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


known = emitted_names()
failed = checked = 0
names_checked, unknown = set(), set()
for path in files:
    problems = []
    try:
        dashboard = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"FAILED: {path}: not valid JSON: {error}")
        failed += 1
        continue
    checked += 1
    if not isinstance(dashboard.get("panels"), list) or not dashboard["panels"]:
        problems.append("no panels")
    uses, reported = [], {}  # (where, expression); the names checked per panel or variable
    ids = {}
    for panel in panels_of(dashboard):
        where = f'panel {panel.get("id")} "{panel.get("title", "")}"'
        if panel.get("id") in ids:
            problems.append(f"{where}: id {panel.get('id')} also used by panel \"{ids[panel.get('id')]}\"")
        ids[panel.get("id")] = panel.get("title", "")
        if panel.get("type") == "row":
            continue
        if not panel.get("datasource"):
            problems.append(f"{where}: no datasource")
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr", "").strip()]
        if not exprs:
            problems.append(f"{where}: no target with an expr")
        uses += [(where, e) for e in exprs]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query", "")
        query = query.get("query", "") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query or "", re.S)
        if variable.get("type") == "query" and m:
            uses.append((f'variable "{variable.get("name")}"', m.group(1)))
        elif variable.get("type") == "query" and (query or "").startswith("query_result("):
            uses.append((f'variable "{variable.get("name")}"', query[len("query_result("):-1]))
    for where, expr in uses:
        for name in sorted(metric_names(expr) - reported.get(where, set())):
            reported.setdefault(where, set()).add(name)
            names_checked.add(name)
            base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
            if name not in known and base not in known:
                unknown.add(name)
                problems.append(f"{where}: unknown metric {name} (not emitted by Sources/)")
    for problem in problems:
        print(f"FAILED: {path}: {problem}")
    failed += bool(problems)
print(f"{checked} dashboards, {len(names_checked)} metric names checked, {len(unknown)} unknown")
sys.exit(1 if failed or not files else 0)

// Package monitoring holds podlife's monitoring pieces: the Prometheus
// Operator's ServiceMonitor and PodMonitor, the alert rules (a Prometheus
// rule file and the PrometheusRule generated from it) and the Grafana
// dashboard. Its tests run the rules' promtool unit tests, check the agent's
// live /metrics with promtool, and check that every query names only metrics
// podlife exports.
package monitoring

#!/usr/bin/env bash
# Installs Debian's `prometheus-pushgateway` the way hack/install-prometheus.sh installs Prometheus.
exec bash "$(dirname "$0")/install-prometheus.sh" prometheus-pushgateway

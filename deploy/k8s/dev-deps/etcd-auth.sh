#!/bin/sh
# Turns etcd's authentication on for Flotilla's discovery, with a user per service (the
# password in ETCD_PASSWORD_<SERVICE>) that may read every registration but write only its own
# (/<cluster>/services/<service>/) and the cluster's fingerprint key. Without authentication,
# anyone who reaches etcd can register a fake instance of any service and receive its traffic,
# or delete the real ones. Run once against a fresh etcd by compose (compose.etcd.yaml) and by
# the dev cluster's Job (etcd.yaml); a second run finds authentication on and does nothing.
#
#   ETCDCTL_ENDPOINTS  etcd to set up          ETCD_ROOT_PASSWORD  the root user's password
#   FLOTILLA_SERVICES  the users to create     FLOTILLA_CLUSTER    key prefix (default flotilla)
set -eu
prefix="/${FLOTILLA_CLUSTER:-flotilla}"
if etcdctl --user="root:$ETCD_ROOT_PASSWORD" auth status 2>/dev/null | grep -q 'Status: true'; then
    echo "etcd authentication is already on"
    exit 0
fi
etcdctl user get root >/dev/null 2>&1 || etcdctl user add "root:$ETCD_ROOT_PASSWORD" --interactive=false
etcdctl user grant-role root root
for service in $FLOTILLA_SERVICES; do
    password=$(printenv "ETCD_PASSWORD_$(echo "$service" | tr '[:lower:]' '[:upper:]')")
    etcdctl user get "$service" >/dev/null 2>&1 \
        || etcdctl user add "$service:$password" --interactive=false
    etcdctl role get "$service" >/dev/null 2>&1 || etcdctl role add "$service"
    etcdctl role grant-permission "$service" read "$prefix/" --prefix=true
    etcdctl role grant-permission "$service" readwrite "$prefix/services/$service/" --prefix=true
    etcdctl role grant-permission "$service" readwrite "$prefix/fingerprint"
    etcdctl user grant-role "$service" "$service"
done
etcdctl auth enable
echo "etcd authentication on: users $FLOTILLA_SERVICES"

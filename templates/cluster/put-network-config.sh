#!/bin/sh
# Stores the flannel network configuration (the JSON of network-config.json beside this
# script) in etcd, under the prefix flanneld reads (FLANNELD_ETCD_PREFIX). Run it once, on
# any master or worker: it uses that node's etcd client certificate. etcdctl and flannel
# 0.2x speak etcd's v3 API.
set -eu
ETCDCTL_API=3 exec etcdctl \
  --endpoints={{etcd.endpoints}} \
  --cacert={{pki.etcd-client.ca}} \
  --cert={{pki.etcd-client.cert}} \
  --key={{pki.etcd-client.key}} \
  put {{flannel.config_key_sh}} {{flannel.network_json_sh}}

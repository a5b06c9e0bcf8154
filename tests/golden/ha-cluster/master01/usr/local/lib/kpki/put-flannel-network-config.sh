#!/bin/sh
# Stores the flannel network configuration (the JSON of network-config.json beside this
# script) in etcd, under the prefix flanneld reads (FLANNELD_ETCD_PREFIX). Run it once, on
# any master or worker: it uses that node's etcd client certificate. etcdctl and flannel
# 0.2x speak etcd's v3 API.
set -eu
ETCDCTL_API=3 exec etcdctl \
  --endpoints=https://192.168.0.1:2379,https://192.168.0.2:2379,https://192.168.0.3:2379 \
  --cacert=/etc/ssl/etcd/ca.crt \
  --cert=/etc/ssl/etcd/etcd-client.crt \
  --key=/etc/ssl/etcd/etcd-client.key \
  put '/coreos.com/network/config' '{"Network":"10.2.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan"}}'

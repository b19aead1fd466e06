#!/usr/bin/env bash
# Re-vendors the CRDs in this folder, byte for byte, from the release tags recorded in README.md.
# Usage: deploy/k8s/crds/vendor.sh STRIMZI_REPO CNPG_REPO KEDA_REPO PROMETHEUS_OPERATOR_REPO
# (local git clones of github.com/strimzi/strimzi-kafka-operator, cloudnative-pg/cloudnative-pg,
# kedacore/keda and prometheus-operator/prometheus-operator; tags are fetched there, nothing else).
set -euo pipefail
STRIMZI=1.2.0 CNPG=v1.30.0 KEDA=v2.20.2 PROMOP=v0.93.0
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 4 ] || { sed -n 2,5p "$0" >&2; exit 2; }
take() {  # repo tag path target
  git -C "$1" show "$2:$3" >"$here/$4"
  printf '%s  %s  %s@%s:%s\n' "$(sha256sum <"$here/$4" | cut -c1-64)" "$4" "$(basename "$1")" "$2" "$3"
}
s=packaging/install/cluster-operator
take "$1" $STRIMZI $s/040-Crd-kafka.yaml kafka.strimzi.io_kafkas.yaml
take "$1" $STRIMZI $s/041-Crd-kafkaconnect.yaml kafka.strimzi.io_kafkaconnects.yaml
take "$1" $STRIMZI $s/043-Crd-kafkatopic.yaml kafka.strimzi.io_kafkatopics.yaml
take "$1" $STRIMZI $s/044-Crd-kafkauser.yaml kafka.strimzi.io_kafkausers.yaml
take "$1" $STRIMZI $s/045-Crd-kafkanodepool.yaml kafka.strimzi.io_kafkanodepools.yaml
take "$1" $STRIMZI $s/047-Crd-kafkaconnector.yaml kafka.strimzi.io_kafkaconnectors.yaml
take "$2" $CNPG config/crd/bases/postgresql.cnpg.io_clusters.yaml postgresql.cnpg.io_clusters.yaml
take "$3" $KEDA config/crd/bases/keda.sh_scaledobjects.yaml keda.sh_scaledobjects.yaml
take "$3" $KEDA config/crd/bases/keda.sh_triggerauthentications.yaml keda.sh_triggerauthentications.yaml
p=example/prometheus-operator-crd
take "$4" $PROMOP $p/monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_podmonitors.yaml
take "$4" $PROMOP $p/monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_prometheusrules.yaml

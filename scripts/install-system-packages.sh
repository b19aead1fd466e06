#!/usr/bin/env bash
# Installs the Debian packages pagestream needs, only those missing. Idempotent.
set -euo pipefail
packages=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd poppler-utils yamllint fonts-dejavu-core)
# headless Chromium + its WebDriver: the web viewer (/ui) is tested in a real browser
packages+=(chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# PostgreSQL server binaries (initdb, pg_ctl): any installed major version will do.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# kubectl renders the k8s overlays offline; any kubectl will do (Debian's is kubernetes-client).
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# promtool runs the alert rules' unit tests (tests/unit/test_deploy_alerts.py); Debian ships it in prometheus.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
  echo "error: missing Debian packages (${missing[*]}) and not root; run: sudo apt-get install ${missing[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a system cluster; pagestream never uses it (it runs its own).
# Debian's prometheus package enables a Prometheus server where systemd runs; only promtool is wanted.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  "${SUDO[@]}" systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi

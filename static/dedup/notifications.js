/* Poll the user's unread notifications and show each as a toast in the lower right corner; no page reload.
   Dismissing a toast marks it read. The container (#mw-toasts) carries the URLs and labels. */
(function () {
    "use strict";

    function csrfToken() {
        const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
        return match ? decodeURIComponent(match[1]) : "";
    }

    function start(container) {
        const pollUrl = container.dataset.pollUrl;
        const readUrl = container.dataset.readUrl;
        const interval = parseInt(container.dataset.interval, 10) || 5000;
        const counter = document.querySelector("#mw-notifications-link .mw-unread-count");
        const shown = new Map(); // id -> toast element
        let lastId = 0;
        let timer = null;
        let inFlight = false;

        function setUnread(count) {
            if (!counter) return;
            counter.textContent = count > 0 ? String(count) : "";
            counter.hidden = !(count > 0);
        }

        function markRead(id) {
            return fetch(readUrl, {
                method: "POST",
                credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
                body: JSON.stringify({ids: [id]}),
            }).then(function (response) {
                return response.ok ? response.json() : null;
            }).then(function (data) {
                if (data) setUnread(data.unread);
            }).catch(function () { /* the toast is gone; the next poll brings it back if unread */ });
        }

        function dismiss(id) {
            const toast = shown.get(id);
            if (toast) toast.remove();
            markRead(id);
        }

        function show(item) {
            if (shown.has(item.id)) return;
            const toast = document.createElement("div");
            toast.className = "mw-toast mw-toast--" + item.level;
            toast.dataset.notificationId = String(item.id);
            toast.setAttribute("role", item.level === "error" ? "alert" : "status");

            const body = document.createElement("div");
            body.className = "mw-toast__body";
            const message = document.createElement("div");
            message.className = "mw-toast__message";
            message.textContent = item.message;
            body.appendChild(message);
            if (item.url) {
                const link = document.createElement("a");
                link.className = "mw-toast__link";
                link.href = item.url;
                link.textContent = container.dataset.labelOpen || "Open";
                // Following the link is reading it.
                link.addEventListener("click", function () { markRead(item.id); });
                body.appendChild(link);
            }

            const close = document.createElement("button");
            close.type = "button";
            close.className = "mw-toast__close";
            close.setAttribute("aria-label", container.dataset.labelDismiss || "Dismiss");
            close.title = container.dataset.labelDismiss || "Dismiss";
            close.textContent = "\u00d7";
            close.addEventListener("click", function () { dismiss(item.id); });

            toast.appendChild(body);
            toast.appendChild(close);
            container.appendChild(toast);
            shown.set(item.id, toast);
        }

        function poll() {
            if (timer !== null) window.clearTimeout(timer);
            timer = null;
            if (inFlight) return;
            inFlight = true;
            fetch(pollUrl + "?after=" + lastId, {credentials: "same-origin", headers: {"Accept": "application/json"}})
                .then(function (response) {
                    const type = response.headers.get("Content-Type") || "";
                    return response.ok && type.indexOf("application/json") === 0 ? response.json() : null;
                })
                .then(function (data) {
                    if (!data) return;
                    // Oldest first, so the newest ends up at the bottom, nearest the corner.
                    data.notifications.slice().reverse().forEach(function (item) {
                        lastId = Math.max(lastId, item.id);
                        show(item);
                    });
                    setUnread(data.unread);
                })
                .catch(function () { /* offline or logged out: try again later */ })
                .finally(function () {
                    inFlight = false;
                    schedule();
                });
        }

        function schedule() {
            if (timer === null && !document.hidden) timer = window.setTimeout(poll, interval);
        }

        document.addEventListener("visibilitychange", function () {
            if (!document.hidden) poll();
        });
        poll();
    }

    function init() {
        const container = document.getElementById("mw-toasts");
        if (container && window.fetch) start(container);
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", init);
    } else {
        init();
    }
})();

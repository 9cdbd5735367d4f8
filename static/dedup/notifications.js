/* Poll the user's unread notifications and show each new one once as a toast in the lower right corner; after
   that it lives in the notification list (the header's counter says how many are unread). "Once" is per user:
   the server notes a notification popped (POST to the popped URL), so another browser or device does not pop
   it again. Toasts stack, success
   and information hide by themselves, and the page gets room at its bottom so they never cover its end.
   Each new notification is also announced as a "mw:notification" event, so an open card can keep up with a
   merge of its record (card.js). The container (#mw-toasts) carries the URLs and labels. */
(function () {
    "use strict";

    // How long a success or information toast stays; warnings and errors stay until dismissed.
    const AUTO_HIDE_MS = 8000;
    // Toasts shown at once; older ones leave the stack (they are still in the list).
    const MAX_SHOWN = 3;
    // Toasts to show again on the next page, when a card reloads itself to show new data (card.js).
    const REPLAY_KEY = "mw.notifications.replay";

    function csrfToken() {
        const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
        return match ? decodeURIComponent(match[1]) : "";
    }

    function storage(kind) {
        try {
            return window[kind];
        } catch (error) {
            return null;  // storage disabled: a card that reloads itself loses its toasts (they are in the list)
        }
    }

    function start(container) {
        const pollUrl = container.dataset.pollUrl;
        const readUrl = container.dataset.readUrl;
        const poppedUrl = container.dataset.poppedUrl;
        const interval = parseInt(container.dataset.interval, 10) || 5000;
        const counter = document.querySelector("#mw-notifications-link .mw-unread-count");
        const session = storage("sessionStorage");
        // When the server drew the page, by its own clock (the notifications' times are by the same clock).
        const renderedAt = Date.parse(container.dataset.renderedAt || "") || 0;
        const shown = new Map(); // id -> toast element
        const claiming = new Map(); // id -> notification whose "popped" claim has not answered yet
        let lastId = 0;
        let timer = null;
        let inFlight = false;
        // A card asked to reload itself (card.js): the page stays until the new one arrives, which on a slow server
        // takes a while, but claims nothing more; a toast it claimed now would be counted popped and lost with it.
        let leaving = false;

        function post(url, ids) {
            return fetch(url, {
                method: "POST",
                credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
                body: JSON.stringify({ids: ids}),
            }).then(function (response) {
                return response.ok ? response.json() : null;
            });
        }

        function pop(items) {
            // Claim the toasts on the server first: of two browsers polling at once, one shows each toast.
            if (!items.length || leaving) return;  // the next page claims them
            const byId = new Map(items.map(function (item) { return [item.id, item]; }));
            // Being claimed: a card that reloads itself before the claim answers (the same poll announced the
            // merge) takes these along too, or the server would count them popped and nobody would see them.
            items.forEach(function (item) { claiming.set(item.id, item); });
            post(poppedUrl, items.map(function (item) { return item.id; }))
                .then(function (data) {
                    if (!data) return;
                    data.popped.slice().sort(function (a, b) { return a - b; }).forEach(function (id) {
                        if (byId.has(id)) show(byId.get(id));
                    });
                })
                .catch(function () { /* shown on a later poll */ })
                .finally(function () {
                    items.forEach(function (item) { claiming.delete(item.id); });
                });
        }

        function setUnread(count) {
            if (!counter) return;
            counter.textContent = count > 0 ? String(count) : "";
            counter.hidden = !(count > 0);
        }

        function makeRoom() {
            // Room below the page's last line as tall as the stack, so scrolling down uncovers everything.
            const height = container.childElementCount ? container.offsetHeight + 24 : 0;
            document.body.style.paddingBottom = height ? height + "px" : "";
        }

        function markRead(id) {
            return post(readUrl, [id]).then(function (data) {
                if (data) setUnread(data.unread);
            }).catch(function () { /* it stays unread in the list */ });
        }

        function hide(id) {
            const toast = shown.get(id);
            if (toast) toast.remove();
            shown.delete(id);
            makeRoom();
        }

        function dismiss(id) {
            hide(id);
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
            toast.mwItem = item;
            container.appendChild(toast);
            shown.set(item.id, toast);
            while (shown.size > MAX_SHOWN) hide(shown.keys().next().value);
            if (item.level === "success" || item.level === "info") {
                let hideTimer = window.setTimeout(function () { hide(item.id); }, AUTO_HIDE_MS);
                // Not while the manager is reading it.
                toast.addEventListener("mouseenter", function () { window.clearTimeout(hideTimer); });
                toast.addEventListener("mouseleave", function () {
                    hideTimer = window.setTimeout(function () { hide(item.id); }, AUTO_HIDE_MS / 2);
                });
            }
            makeRoom();
        }

        function announce(item) {
            document.dispatchEvent(new CustomEvent("mw:notification", {detail: item}));
        }

        function poll() {
            if (timer !== null) window.clearTimeout(timer);
            timer = null;
            if (inFlight || leaving) return;
            inFlight = true;
            fetch(pollUrl + "?after=" + lastId, {credentials: "same-origin", headers: {"Accept": "application/json"}})
                .then(function (response) {
                    const type = response.headers.get("Content-Type") || "";
                    return response.ok && type.indexOf("application/json") === 0 ? response.json() : null;
                })
                .then(function (data) {
                    if (!data) return;
                    const fresh = [];
                    // Oldest first, so the newest ends up at the bottom, nearest the corner.
                    data.notifications.slice().reverse().forEach(function (item) {
                        lastId = Math.max(lastId, item.id);
                        // Whatever happened since the server drew this page is news to it (another tab may
                        // have popped the toast already).
                        if (renderedAt && Date.parse(item.created_at) >= renderedAt) announce(item);
                        if (!item.popped) fresh.push(item);  // a popped one lives in the list now
                    });
                    pop(fresh);
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

        // A card that reloaded itself to show new data shows the toasts it had on screen once more.
        if (session) {
            const replay = session.getItem(REPLAY_KEY);
            session.removeItem(REPLAY_KEY);
            if (replay) {
                try {
                    JSON.parse(replay).forEach(show);
                } catch (error) { /* ignore a damaged entry */ }
            }
        }
        window.mwNotifications = {
            // Called by a card just before it reloads itself: the toasts on screen and those whose claim has not
            // answered yet go along to the next page, and from now on this page claims no more (a poll answering
            // meanwhile leaves its toasts to the next page, which polls at once).
            replayShownAfterReload: function () {
                leaving = true;
                const items = Array.from(shown.values()).map(function (toast) { return toast.mwItem; })
                    .concat(Array.from(claiming.values()).filter(function (item) { return !shown.has(item.id); }));
                if (session && items.length) session.setItem(REPLAY_KEY, JSON.stringify(items));
            },
        };

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

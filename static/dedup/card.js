/* Duplicate control on the record card: place the "Duplicates: N" badge next to the phone and email fields,
   open the list behind it in a dialog (fetched, without leaving the card), keep the list's ticks and
   priority consistent, and make the compare table's radios update the "After the merge" column.
   Plain JavaScript; the server sends its data through json_script. */
(function () {
    "use strict";

    function ready(fn) {
        if (document.readyState !== "loading") {
            fn();
        } else {
            document.addEventListener("DOMContentLoaded", fn);
        }
    }

    function readJson(id) {
        const node = document.getElementById(id);
        if (!node) {
            return null;
        }
        try {
            return JSON.parse(node.textContent);
        } catch (error) {
            return null;
        }
    }

    // --- The badge next to the phone and email fields -----------------------------------------------------

    function placeFieldBadges(config) {
        const template = document.getElementById("dedup-field-badge");
        if (!template || !config.anchors) {
            return;
        }
        config.anchors.forEach(function (selectors) {
            // One badge per anchor group (phones, emails): at the first of its selectors found on the page.
            for (const selector of selectors) {
                const target = document.querySelector(selector);
                if (!target) {
                    continue;
                }
                const badge = template.content.firstElementChild.cloneNode(true);
                const heading = target.classList.contains("inline-group") ? target.querySelector("h2") : null;
                if (heading) {
                    heading.appendChild(badge);
                } else {
                    (target.querySelector(".flex-container") || target).appendChild(badge);
                }
                break;
            }
        });
    }

    // --- The list behind the badge --------------------------------------------------------------------------

    function bindList(form, dialog) {
        const current = form.dataset.current;
        const note = form.querySelector("[data-dedup-unticked-note]");
        const dismiss = form.querySelector("[data-dedup-dismiss]");

        function refresh() {
            let unticked = 0;
            form.querySelectorAll(".dedup-list-row").forEach(function (row) {
                const include = row.querySelector('input[name="include"]');
                const radio = row.querySelector('input[name="priority"]');
                const included = !include || include.checked;
                if (!included) {
                    unticked += 1;
                }
                row.classList.toggle("is-excluded", !included);
                if (radio) {
                    radio.disabled = !included;
                    if (!included && radio.checked) {
                        // The priority record must be merged: fall back to the current one.
                        radio.checked = false;
                        const currentRadio = form.querySelector('input[name="priority"][value="' + current + '"]');
                        if (currentRadio) {
                            currentRadio.checked = true;
                        }
                    }
                }
            });
            form.querySelectorAll(".dedup-list-row").forEach(function (row) {
                const radio = row.querySelector('input[name="priority"]');
                row.classList.toggle("is-priority", Boolean(radio && radio.checked));
            });
            if (note) {
                note.hidden = unticked === 0;
            }
            if (dismiss) {
                dismiss.hidden = unticked === 0;
            }
        }

        form.addEventListener("change", refresh);
        form.querySelectorAll("[data-dedup-close]").forEach(function (button) {
            button.addEventListener("click", function () {
                if (dialog) {
                    dialog.close();
                }
            });
        });
        refresh();
    }

    function openList(config, dialog, pageUrl) {
        const body = dialog.querySelector(".dedup-dialog-body");
        const loading = document.createElement("p");
        loading.className = "dedup-loading";
        loading.textContent = config.labels.loading;
        body.replaceChildren(loading);
        if (!dialog.open) {
            dialog.showModal();
        }
        fetch(config.duplicatesUrl, {credentials: "same-origin", headers: {"X-Requested-With": "XMLHttpRequest"}})
            .then(function (response) {
                if (response.redirected && pageUrl) {
                    // Logged out meanwhile: the list's own page goes through the login and back.
                    window.location.href = pageUrl;
                    return null;
                }
                if (!response.ok) {
                    throw new Error(String(response.status));
                }
                return response.text();
            })
            .then(function (html) {
                if (html === null) {
                    return;
                }
                const template = document.createElement("template");
                template.innerHTML = html;
                body.replaceChildren(template.content);
                const form = body.querySelector(".dedup-list-form");
                if (form) {
                    bindList(form, dialog);
                }
            })
            .catch(function () {
                const failed = document.createElement("p");
                failed.className = "dedup-failed";
                failed.textContent = config.labels.failed;
                body.replaceChildren(failed);
            });
    }

    function bindCard(config) {
        const dialog = document.getElementById("dedup-dialog");
        placeFieldBadges(config);
        if (!dialog || typeof dialog.showModal !== "function") {
            return; // No <dialog>: the badge stays a link to the full page.
        }
        document.addEventListener("click", function (event) {
            const badge = event.target.closest("[data-dedup-open]");
            if (!badge || event.ctrlKey || event.metaKey || event.shiftKey) {
                return;
            }
            event.preventDefault();
            openList(config, dialog, badge.href);
        });
        dialog.addEventListener("click", function (event) {
            if (event.target === dialog) {
                dialog.close(); // a click on the backdrop
            }
        });
        if (window.location.hash === "#duplicates" && config.count > 0) {
            // Arrived from the change list's Duplicates column.
            openList(config, dialog, null);
        }
    }

    // --- The compare table ------------------------------------------------------------------------------------

    function bindCompare(config) {
        const table = document.querySelector("table.dedup-compare");
        if (!table) {
            return;
        }
        const taken = document.querySelector("[data-dedup-taken]");
        const priority = String(config.priority);

        function refresh() {
            const labels = [];
            table.querySelectorAll("tr.dedup-field-row").forEach(function (row) {
                const chosen = row.querySelector('input[type="radio"]:checked');
                row.querySelectorAll("td.dedup-choice").forEach(function (cell) {
                    cell.classList.toggle("is-chosen", Boolean(chosen) && cell.contains(chosen));
                });
                if (!chosen) {
                    return;
                }
                const result = row.querySelector("[data-dedup-result]");
                const value = chosen.closest("td").querySelector(".dedup-value");
                if (result && value) {
                    result.textContent = value.textContent;
                }
                if (chosen.value !== priority && !row.classList.contains("is-uniform")) {
                    labels.push(row.dataset.label);
                }
            });
            if (taken) {
                taken.textContent = labels.length
                    ? taken.dataset.prefix + " " + labels.join(", ")
                    : taken.dataset.empty;
            }
        }

        table.addEventListener("click", function (event) {
            const cell = event.target.closest("td.dedup-choice");
            if (!cell || event.target.closest("label")) {
                return; // a click on the label already checks the radio
            }
            const radio = cell.querySelector('input[type="radio"]');
            if (radio && !radio.checked) {
                radio.checked = true;
                refresh();
            }
        });
        table.addEventListener("change", refresh);
        refresh();
    }

    // --- Keeping up with a merge of the open record ----------------------------------------------------------

    function formState(form) {
        const data = new FormData(form);
        data.delete("csrfmiddlewaretoken");
        return new URLSearchParams(data).toString();
    }

    function showStale(text, label, href) {
        let banner = document.getElementById("dedup-stale");
        if (!banner) {
            banner = document.createElement("ul");
            banner.id = "dedup-stale";
            banner.className = "messagelist dedup-stale";
            const content = document.getElementById("content") || document.body;
            content.insertBefore(banner, content.firstChild);
        }
        banner.textContent = "";
        const line = document.createElement("li");
        line.className = "warning";
        line.appendChild(document.createTextNode(text + " \u2014 "));
        const link = document.createElement("a");
        link.href = href;
        link.textContent = label;
        link.className = "dedup-stale-reload";
        line.appendChild(link);
        banner.appendChild(line);
    }

    function keepUp(config) {
        // The card asks the server every few seconds for its record's state (its version and the newest merge or
        // undo it took part in), and at once when a notification names it. When the state is no longer the one
        // the card was drawn with: a card with no unsaved edits reloads to show the new data; one with edits
        // (never reloaded: they would be lost), or a record merged away, says so with a link instead.
        if (!config.stateUrl || !window.fetch) return;
        const form = document.querySelector("#content-main form");
        const initial = form ? formState(form) : "";
        const labels = config.labels || {};
        const interval = config.stateInterval || 5000;
        let timer = null;
        let inFlight = false;
        let stale = false;

        function changed(state) {
            if (state.merged_into) {
                showStale(labels.mergedAway, labels.reload, state.url || window.location.href);
                return;
            }
            const edited = form && formState(form) !== initial;
            if (!edited && !stale) {
                if (window.mwNotifications) window.mwNotifications.replayShownAfterReload();
                window.location.reload();
                return;
            }
            showStale(labels.changed, labels.reload, window.location.href);
        }

        function check() {
            if (timer !== null) window.clearTimeout(timer);
            timer = null;
            if (inFlight) return;
            inFlight = true;
            fetch(config.stateUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
                .then(function (response) {
                    const type = response.headers.get("Content-Type") || "";
                    return response.ok && type.indexOf("application/json") === 0 ? response.json() : null;
                })
                .then(function (state) {
                    if (state && state.stamp !== config.state) {
                        changed(state);
                        stale = true;
                        config.state = state.stamp;  // say it once per change, not on every poll
                    }
                })
                .catch(function () { /* offline or logged out: try again later */ })
                .finally(function () {
                    inFlight = false;
                    schedule();
                });
        }

        function schedule() {
            if (timer === null && !document.hidden) timer = window.setTimeout(check, interval);
        }

        document.addEventListener("mw:notification", function (event) {
            const job = (event.detail || {}).job;
            if (!job || job.content_type !== config.contentType) return;
            const pk = String(config.pk);
            if (String(job.survivor) === pk || job.absorbed.map(String).indexOf(pk) !== -1) check();
        });
        document.addEventListener("visibilitychange", function () {
            if (!document.hidden) check();
        });
        schedule();
    }

    ready(function () {
        const card = readJson("dedup-card-config");
        if (card) {
            bindCard(card);
            keepUp(card);
        }
        const page = document.querySelector(".dedup-list-page .dedup-list-form");
        if (page) {
            bindList(page, null);
        }
        const compare = readJson("dedup-compare-config");
        if (compare) {
            bindCompare(compare);
        }
    });
})();

/* Warn while a duplicate is being typed: on the add and change forms, the phone, email, name and company inputs
   ask the server (debounced) whether saved records already hold what is typed, and show "Possible duplicate:
   Ivan Petrov (same phone …) — open / merge" under the field. Plain JavaScript; the server sends the inputs to
   watch, the URL and the labels through json_script (#dedup-typing-config). Nothing here blocks saving. */
(function () {
    "use strict";

    const DEBOUNCE_MS = 350;

    function readConfig() {
        const node = document.getElementById("dedup-typing-config");
        if (!node) return null;
        try {
            return JSON.parse(node.textContent);
        } catch (error) {
            return null;
        }
    }

    function inputsOf(selector) {
        // The empty rows Django keeps as templates for "Add another" are not data.
        return Array.from(document.querySelectorAll(selector)).filter(function (input) {
            return input.name.indexOf("__prefix__") === -1 && !input.closest(".empty-form");
        });
    }

    function valueOf(input) {
        if (input.tagName === "SELECT") {
            const option = input.selectedOptions && input.selectedOptions[0];
            return option && option.value ? option.textContent.trim() : "";
        }
        const row = input.closest(".dynamic-form, tr.form-row");
        const deleting = row && row.querySelector('input[type="checkbox"][name$="-DELETE"]');
        if (deleting && deleting.checked) return "";
        return (input.value || "").trim();
    }

    function start(config, form) {
        const columns = Object.keys(config.inputs);
        const fieldOfColumn = {};
        Object.keys(config.fields || {}).forEach(function (name) {
            config.fields[name].forEach(function (column) { fieldOfColumn[column] = name; });
        });
        let timer = null;
        let sequence = 0;
        let lastInput = null;

        function columnOf(element) {
            for (const column of columns) {
                if (element.matches && element.matches(config.inputs[column])) return column;
            }
            return null;
        }

        function query() {
            const params = new URLSearchParams();
            let any = false;
            columns.forEach(function (column) {
                inputsOf(config.inputs[column]).forEach(function (input) {
                    const value = valueOf(input);
                    if (value) {
                        params.append(column, value);
                        any = true;
                    }
                });
            });
            if (config.exclude) params.append("exclude", config.exclude);
            if (config.stage) {
                const stage = document.querySelector(config.stage);
                if (stage && stage.value) params.append("stage", stage.value);
            }
            return any ? params : null;
        }

        function anchorFor(duplicate) {
            // Under the field being typed when the duplicate matched on it, else under the first field it matched.
            const edited = lastInput && fieldOfColumn[columnOf(lastInput)];
            if (lastInput && document.contains(lastInput) && duplicate.fields.indexOf(edited) !== -1) return lastInput;
            for (const name of duplicate.fields) {
                for (const column of (config.fields[name] || [])) {
                    const filled = inputsOf(config.inputs[column]).filter(function (input) { return valueOf(input); });
                    if (filled.length) return filled[0];
                }
            }
            return lastInput;
        }

        function clear() {
            document.querySelectorAll(".dedup-typing-warning").forEach(function (node) { node.remove(); });
        }

        function link(text, href, className) {
            const anchor = document.createElement("a");
            anchor.href = href;
            anchor.className = className;
            anchor.textContent = text;
            anchor.target = "_blank";
            anchor.rel = "noopener";
            return anchor;
        }

        function render(duplicates) {
            clear();
            const boxes = new Map();
            duplicates.forEach(function (duplicate) {
                const input = anchorFor(duplicate);
                if (!input) return;
                const holder = input.closest("td, .fieldBox, .form-row > div") || input.parentElement;
                let box = boxes.get(holder);
                if (!box) {
                    box = document.createElement("div");
                    box.className = "dedup-typing-warning";
                    box.setAttribute("role", "status");
                    holder.appendChild(box);
                    boxes.set(holder, box);
                }
                const line = document.createElement("div");
                line.className = "dedup-typing-warning__item";
                line.dataset.pk = String(duplicate.pk);
                line.appendChild(document.createTextNode(config.labels.possible + " "));
                const name = document.createElement("strong");
                name.textContent = duplicate.label;
                line.appendChild(name);
                if (duplicate.reasons.length) {
                    line.appendChild(document.createTextNode(" (" + duplicate.reasons.join("; ") + ")"));
                }
                line.appendChild(document.createTextNode(" \u2014 "));
                line.appendChild(link(config.labels.open, duplicate.url, "dedup-typing-open"));
                if (duplicate.merge_url) {
                    line.appendChild(document.createTextNode(" / "));
                    line.appendChild(link(config.labels.merge, duplicate.merge_url, "dedup-typing-merge"));
                }
                box.appendChild(line);
            });
        }

        function check() {
            timer = null;
            const params = query();
            const mine = ++sequence;
            if (!params) {
                clear();
                return;
            }
            fetch(config.url + "?" + params.toString(), {
                credentials: "same-origin",
                headers: {"Accept": "application/json"},
            }).then(function (response) {
                return response.ok ? response.json() : null;
            }).then(function (data) {
                // An answer to an older question is dropped: the manager has typed on since.
                if (data && mine === sequence) render(data.duplicates || []);
            }).catch(function () { /* offline: the form still saves; the card shows duplicates after */ });
        }

        function changed(event) {
            const target = event.target;
            if (!target || !columnOf(target)) return;
            lastInput = target;
            if (timer !== null) window.clearTimeout(timer);
            timer = window.setTimeout(check, DEBOUNCE_MS);
        }

        form.addEventListener("input", changed);
        form.addEventListener("change", changed);
        // The admin's autocomplete selects (company) announce changes through jQuery only.
        if (window.django && window.django.jQuery) {
            window.django.jQuery(form).on("change", "select", function (event) { changed(event); });
        }
    }

    function init() {
        const config = readConfig();
        const form = document.querySelector("#content-main form");
        if (config && form && window.fetch) start(config, form);
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", init);
    } else {
        init();
    }
})();

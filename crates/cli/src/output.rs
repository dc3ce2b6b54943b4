//! What the commands print: a readable table on a terminal, or one JSON
//! document with `--json` for scripts.

/// Prints `value` as JSON or as an aligned two-column table.
pub fn print(value: &serde_json::Value, as_json: bool) {
    if as_json {
        println!("{value}");
        return;
    }
    if let Some(obj) = value.as_object() {
        let width = obj.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in obj {
            let shown = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            println!("{k:<width$}  {shown}");
        }
    }
}

/// A table with the style every command uses.
pub fn table(header: impl IntoIterator<Item = impl Into<comfy_table::Cell>>) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(header);
    table
}

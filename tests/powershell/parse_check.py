#!/usr/bin/env python3
"""Parse check and lint of the PowerShell module, with tree-sitter-powershell (no PowerShell here).

1. Every .ps1/.psm1/.psd1 under the given folder parses with no ERROR or MISSING node.
2. Lint of each module (a .psd1 with a RootModule .psm1 beside it):
   - the manifest is one hashtable of literal values (strings, numbers, @(...) arrays,
     nested hashtables): no variable, command, subexpression, script block, type, operator;
   - *ToExport lists have no wildcards; RootModule, PowerShellVersion '5.1' and
     CompatiblePSEditions Core + Desktop are set;
   - naming rule: a function whose name contains a dash is public, the others are private
     helpers; FunctionsToExport is exactly the set of public functions;
   - each public function uses an approved verb (Get-Verb), has [CmdletBinding()], and
     comment-based help with .SYNOPSIS, .DESCRIPTION, at least one .EXAMPLE and a .PARAMETER
     for each of its parameters (and none for parameters it lacks).
Prints `N passed, N failed` (one check per file and per rule); exits 1 on any failure.

Usage: parse_check.py FOLDER
"""

import pathlib
import re
import sys

import tree_sitter_powershell
from tree_sitter import Language, Parser

# Get-Verb on PowerShell 7.4.
APPROVED_VERBS = {
    # Common
    "Add", "Clear", "Close", "Copy", "Enter", "Exit", "Find", "Format", "Get", "Hide", "Join",
    "Lock", "Move", "New", "Open", "Optimize", "Pop", "Push", "Redo", "Remove", "Rename",
    "Reset", "Resize", "Search", "Select", "Set", "Show", "Skip", "Split", "Step", "Switch",
    "Undo", "Unlock", "Watch",
    # Communications
    "Connect", "Disconnect", "Read", "Receive", "Send", "Write",
    # Data
    "Backup", "Checkpoint", "Compare", "Compress", "Convert", "ConvertFrom", "ConvertTo",
    "Dismount", "Edit", "Expand", "Export", "Group", "Import", "Initialize", "Limit", "Merge",
    "Mount", "Out", "Publish", "Restore", "Save", "Sync", "Unpublish", "Update",
    # Diagnostic
    "Debug", "Measure", "Ping", "Repair", "Resolve", "Test", "Trace",
    # Lifecycle
    "Approve", "Assert", "Build", "Complete", "Confirm", "Deny", "Deploy", "Disable", "Enable",
    "Install", "Invoke", "Register", "Request", "Restart", "Resume", "Start", "Stop", "Submit",
    "Suspend", "Uninstall", "Unregister", "Wait",
    # Security
    "Block", "Grant", "Protect", "Revoke", "Unblock", "Unprotect",
    # Other
    "Use",
}

# Node types a manifest may contain: the wrappers every expression passes through, literals,
# arrays and hashtables. Anything else (variable, command, sub_expression, script_block,
# type_literal, member access, ...) is not a literal.
MANIFEST_NODES = {
    "program", "comment", "statement_list", "pipeline", "pipeline_chain", "logical_expression",
    "bitwise_expression", "comparison_expression", "additive_expression",
    "multiplicative_expression", "format_expression", "range_expression",
    "array_literal_expression", "unary_expression", "hash_literal_expression",
    "hash_literal_body", "hash_entry", "key_expression", "simple_name", "string_literal",
    "verbatim_string_characters", "integer_literal", "decimal_integer_literal",
    "hexadecimal_integer_literal", "real_literal", "array_expression", "empty_statement",
}
# Wrappers that are operators when they have more than one named child (1 + 2, 'a' -f 'b').
OPERATOR_NODES = {
    "logical_expression", "bitwise_expression", "comparison_expression", "additive_expression",
    "multiplicative_expression", "format_expression", "range_expression",
}
MANIFEST_TOKENS = {"@{", "}", "@(", ")", "=", ",", ";", "\n"}

LANGUAGE = Language(tree_sitter_powershell.language())
PARSER = Parser(LANGUAGE)

passed = 0
failed = 0


def check(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"FAIL {name}")
        for p in problems:
            print(f"       {p}")
    else:
        passed += 1
        print(f"ok   {name}")


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def pos(node):
    return f"{node.start_point[0] + 1}:{node.start_point[1] + 1}"


def text(node):
    return node.text.decode("utf-8")


def parse_errors(tree):
    out = []
    for n in walk(tree.root_node):
        if n.type == "ERROR":
            out.append(f"{pos(n)}: syntax error near {text(n)[:60]!r}")
        elif n.is_missing:
            out.append(f"{pos(n)}: missing {n.type!r}")
    return out


def string_value(node):
    """The value of a string_literal node, or None if it is not a plain literal string."""
    raw = text(node)
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return raw[1:-1].replace("''", "'")
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        body = raw[1:-1]
        if "$" in body or "`" in body:
            return None
        return body
    return None


def manifest_literal_problems(tree):
    out = []
    for n in walk(tree.root_node):
        if not n.is_named:
            if n.type not in MANIFEST_TOKENS:
                out.append(f"{pos(n)}: operator or keyword {n.type!r} in the manifest")
            continue
        if n.type not in MANIFEST_NODES:
            out.append(f"{pos(n)}: {n.type} {text(n)[:40]!r} is not a literal value")
        elif n.type in OPERATOR_NODES and n.named_child_count > 1:
            out.append(f"{pos(n)}: an expression {text(n)[:40]!r} is not a literal value")
        elif n.type == "unary_expression" and any(not c.is_named for c in n.children):
            out.append(f"{pos(n)}: an expression {text(n)[:40]!r} is not a literal value")
        elif n.type == "string_literal" and string_value(n) is None:
            out.append(f"{pos(n)}: an expandable string {text(n)[:40]!r} is not a literal value")
    return out


def manifest_entries(tree):
    """Top-level hashtable entries: key -> value node (the pipeline)."""
    top = [n for n in walk(tree.root_node) if n.type == "hash_literal_expression"]
    if not top:
        return None
    body = next((c for c in top[0].children if c.type == "hash_literal_body"), None)
    entries = {}
    if body is None:
        return entries
    for e in body.children:
        if e.type != "hash_entry":
            continue
        key = next(c for c in e.children if c.type == "key_expression")
        value = next((c for c in e.children if c.type == "pipeline"), None)
        entries[text(key).strip("'\"")] = value
    return entries


def string_values(node):
    """All literal strings in a value (a string or an array of strings)."""
    if node is None:
        return []
    return [string_value(n) for n in walk(node) if n.type == "string_literal"]


def help_comment(func):
    """The comment-based help of a function: the first <# #> comment inside its body, before
    the param block, or the block comment right before the function."""
    for c in func.children:
        if c.type == "comment" and text(c).startswith("<#"):
            return text(c)
        if c.type == "script_block":
            for cc in c.children:
                if cc.type == "comment" and text(cc).startswith("<#"):
                    return text(cc)
                if cc.type != "comment":
                    break
            break
    prev = func.prev_named_sibling
    if prev is not None and prev.type == "comment" and text(prev).startswith("<#"):
        return text(prev)
    return None


def function_parameters(func):
    block = next((c for c in func.children if c.type == "script_block"), None)
    if block is None:
        return None, []
    param_block = next((c for c in block.children if c.type == "param_block"), None)
    if param_block is None:
        return None, []
    names = []
    plist = next((c for c in param_block.children if c.type == "parameter_list"), None)
    if plist is not None:
        for sp in plist.children:
            if sp.type == "script_parameter":
                var = next(c for c in sp.children if c.type == "variable")
                names.append(text(var)[1:])
    return param_block, names


def has_cmdletbinding(param_block):
    if param_block is None:
        return False
    attrs = next((c for c in param_block.children if c.type == "attribute_list"), None)
    if attrs is None:
        return False
    return any(
        c.type == "attribute_name" and text(c).lower() == "cmdletbinding"
        for a in attrs.children
        for c in a.children
    )


def lint_function(func, name):
    out = []
    verb = name.split("-", 1)[0]
    if verb not in APPROVED_VERBS:
        out.append(f"verb {verb!r} is not an approved verb (Get-Verb)")
    param_block, params = function_parameters(func)
    if not has_cmdletbinding(param_block):
        out.append("no [CmdletBinding()] param block")
    help_text = help_comment(func)
    if help_text is None:
        out.append("no comment-based help (<# .SYNOPSIS ... #>)")
        return out
    keywords = re.findall(r"^\s*\.([A-Za-z]+)[ \t]*(\S*)", help_text, re.MULTILINE)
    kinds = [k.upper() for k, _ in keywords]
    for required in ("SYNOPSIS", "DESCRIPTION"):
        if kinds.count(required) != 1:
            out.append(f"help needs exactly one .{required}")
    if "EXAMPLE" not in kinds:
        out.append("help has no .EXAMPLE")
    documented = {arg.lower() for k, arg in keywords if k.upper() == "PARAMETER"}
    for p in params:
        if p.lower() not in documented:
            out.append(f"help has no .PARAMETER {p}")
    for d in documented - {p.lower() for p in params}:
        out.append(f"help documents .PARAMETER {d}, which the function does not have")
    return out


def lint_module(psd1, tree):
    problems = manifest_literal_problems(tree)
    check(f"{psd1.name}: literal values only", problems)

    entries = manifest_entries(tree)
    if entries is None:
        check(f"{psd1.name}: is a hashtable", ["no top-level hashtable"])
        return
    problems = []
    for key in ("FunctionsToExport", "CmdletsToExport", "VariablesToExport", "AliasesToExport"):
        if key not in entries:
            problems.append(f"{key} is missing (an absent list exports everything)")
            continue
        for v in string_values(entries[key]):
            if v is None or any(ch in v for ch in "*?["):
                problems.append(f"{key}: {v!r} is a wildcard or not a literal name")
    if string_values(entries.get("PowerShellVersion")) != ["5.1"]:
        problems.append("PowerShellVersion must be '5.1'")
    if sorted(string_values(entries.get("CompatiblePSEditions"))) != ["Core", "Desktop"]:
        problems.append("CompatiblePSEditions must be Core and Desktop")
    root = string_values(entries.get("RootModule"))
    if len(root) != 1 or not root[0].endswith(".psm1"):
        problems.append("RootModule must name the .psm1")
    check(f"{psd1.name}: explicit exports, version, editions, root module", problems)
    if problems and (len(root) != 1 or not root[0].endswith(".psm1")):
        return

    psm1 = psd1.parent / root[0]
    if not psm1.is_file():
        check(f"{psd1.name}: RootModule exists", [f"{psm1} not found"])
        return
    mtree = PARSER.parse(psm1.read_bytes())
    functions = {}
    for n in walk(mtree.root_node):
        if n.type == "function_statement":
            fname = text(next(c for c in n.children if c.type == "function_name"))
            functions.setdefault(fname, n)
    public = {f for f in functions if "-" in f}
    exported = [v for v in string_values(entries["FunctionsToExport"])]
    problems = []
    if len(exported) != len(set(exported)):
        problems.append("FunctionsToExport lists a function twice")
    for f in sorted(public - set(exported)):
        problems.append(f"{f} is defined (public: its name has a dash) but not exported")
    for f in sorted(set(exported) - public):
        if f in functions:
            problems.append(f"{f} is exported but is a private helper (no dash)")
        else:
            problems.append(f"{f} is exported but not defined in {psm1.name}")
    check(f"{psd1.name}: FunctionsToExport == public functions of {psm1.name} ({len(public)})", problems)

    for f in sorted(public):
        check(f"{psm1.name}: {f}: approved verb, CmdletBinding, help", lint_function(functions[f], f))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(sys.argv[1])
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ps1", ".psm1", ".psd1"))
    if not files:
        check(f"PowerShell files under {root}", ["none found"])
    trees = {}
    for f in files:
        tree = PARSER.parse(f.read_bytes())
        trees[f] = tree
        check(f"parse {f.relative_to(root)}", parse_errors(tree))
    for f in files:
        if f.suffix.lower() == ".psd1":
            lint_module(f, trees[f])
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

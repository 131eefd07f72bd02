#!/usr/bin/env python3
"""Negative controls for parse_check.py: each broken copy of the real module must fail with the
expected message, so the parse check and lint are shown able to fail. Prints `N passed, N failed`.

Usage: lint_selftest.py MODULE_FOLDER   (powershell/PasswordHashSync)
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def mutate(module, name, psd1=None, psm1=None):
    """A copy of the module with replacements (old, new) applied to the manifest / script."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="phsync-lint-"))
    dest = tmp / "PasswordHashSync"
    shutil.copytree(module, dest)
    for fname, edits in (("PasswordHashSync.psd1", psd1), ("PasswordHashSync.psm1", psm1)):
        if not edits:
            continue
        path = dest / fname
        src = path.read_text(encoding="utf-8")
        for old, new in edits:
            if old not in src:
                raise SystemExit(f"self-test {name}: {old!r} not in {fname}")
            src = src.replace(old, new, 1)
        path.write_text(src, encoding="utf-8")
    return tmp


CASES = [
    ("a defined function that is not exported",
     dict(psd1=[("        'Set-CloudPassword',\n", "")]),
     "Set-CloudPassword is defined (public: its name has a dash) but not exported"),
    ("an exported function that is not defined",
     dict(psd1=[("        'Test-CloudSignIn'\n", "        'Test-CloudSignIn',\n        'Get-Nothing'\n")]),
     "Get-Nothing is exported but not defined"),
    ("an exported private helper",
     dict(psd1=[("        'Test-CloudSignIn'\n", "        'Test-CloudSignIn',\n        'PhsLibrary'\n")]),
     "PhsLibrary is exported but is a private helper"),
    ("a wildcard export",
     dict(psd1=[("AliasesToExport      = @()", "AliasesToExport      = @('*')")]),
     "AliasesToExport: '*' is a wildcard"),
    ("a missing export list",
     dict(psd1=[("    CmdletsToExport      = @()\n", "")]),
     "CmdletsToExport is missing"),
    ("a variable in the manifest",
     dict(psd1=[("ModuleVersion        = '0.1.0'", "ModuleVersion        = $version")]),
     "variable '$version' is not a literal value"),
    ("an expression in the manifest",
     dict(psd1=[("ModuleVersion        = '0.1.0'", "ModuleVersion        = '0.1' + '.0'")]),
     "is not a literal value"),
    ("a command in the manifest",
     dict(psd1=[("GUID                 = '0baa24fd-12d0-4172-9240-2d1f750a41bd'", "GUID                 = (New-Guid)")]),
     "is not a literal value"),
    ("an expandable string in the manifest",
     dict(psd1=[("Author               = 'phsync contributors'", 'Author               = "$env:USER"')]),
     "is not a literal value"),
    ("a wrong PowerShellVersion",
     dict(psd1=[("PowerShellVersion    = '5.1'", "PowerShellVersion    = '7.2'")]),
     "PowerShellVersion must be '5.1'"),
    ("CompatiblePSEditions without Desktop",
     dict(psd1=[("@('Core', 'Desktop')", "@('Core')")]),
     "CompatiblePSEditions must be Core and Desktop"),
    ("an unapproved verb",
     dict(psm1=[("function Test-CloudSignIn {", "function Check-CloudSignIn {")],
          psd1=[("'Test-CloudSignIn'", "'Check-CloudSignIn'")]),
     "verb 'Check' is not an approved verb"),
    ("help without .EXAMPLE",
     dict(psm1=[("    .EXAMPLE\n    PS> ConvertTo-NTHash", "    PS> ConvertTo-NTHash")]),
     "help has no .EXAMPLE"),
    ("help without .DESCRIPTION",
     dict(psm1=[("    .DESCRIPTION\n    Returns the upper-case hexadecimal NT hash", "    Returns the upper-case hexadecimal NT hash")]),
     "help needs exactly one .DESCRIPTION"),
    ("an undocumented parameter",
     dict(psm1=[("    .PARAMETER CaFile\n    For a tenant service: PEM CA certificate(s) to trust instead of the system's roots.\n    Default: $env:PHSYNC_CA_FILE.\n\n    .EXAMPLE\n    PS> Test-CloudSignIn",
                 "    .EXAMPLE\n    PS> Test-CloudSignIn")]),
     "help has no .PARAMETER CaFile"),
    ("no CmdletBinding",
     dict(psm1=[("    [CmdletBinding()]\n    [OutputType([string])]\n    param(\n        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]\n        [System.Security.SecureString]$Password\n    )\n    process {\n        try {\n            (PhsLibrary).NtHash",
                 "    [OutputType([string])]\n    param(\n        [Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true)]\n        [System.Security.SecureString]$Password\n    )\n    process {\n        try {\n            (PhsLibrary).NtHash")]),
     "no [CmdletBinding()] param block"),
    ("a syntax error",
     dict(psm1=[("function PhsQuote {", "function PhsQuote {{")]),
     "FAIL parse PasswordHashSync/PasswordHashSync.psm1"),
]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    module = pathlib.Path(sys.argv[1]).resolve()
    passed = failed = 0

    def run(folder):
        return subprocess.run([sys.executable, str(HERE / "parse_check.py"), str(folder)],
                              capture_output=True, text=True)

    clean = run(module.parent)
    if clean.returncode == 0:
        passed += 1
        print("ok   the real module passes")
    else:
        failed += 1
        print("FAIL the real module does not pass:\n" + clean.stdout)

    for name, edits, expected in CASES:
        tmp = mutate(module, name, **edits)
        try:
            r = run(tmp)
            if r.returncode == 1 and expected in r.stdout:
                passed += 1
                print(f"ok   rejects {name}")
            else:
                failed += 1
                print(f"FAIL does not reject {name} (exit {r.returncode}, expected {expected!r}):\n{r.stdout}{r.stderr}")
        finally:
            shutil.rmtree(tmp)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

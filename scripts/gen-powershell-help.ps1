# Generates the PasswordHashSync module's MAML help (en-US/PasswordHashSync.dll-Help.xml) from
# the written help in powershell/help/PasswordHashSync.help.psd1 (synopsis, description,
# parameter descriptions, examples) and the cmdlets' own metadata (syntax, parameter sets,
# types, positions, pipeline input, aliases, output types), so the two cannot drift apart.
# The generated file is committed; the Pester suite regenerates it and fails on a difference.
#
#   pwsh -NoProfile -File scripts/gen-powershell-help.ps1 -ModulePath <packaged module folder> [-OutFile F]
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$ModulePath,
    [string]$OutFile = (Join-Path $PSScriptRoot '../powershell/PasswordHashSync/en-US/PasswordHashSync.dll-Help.xml'),
    [string]$HelpData = (Join-Path $PSScriptRoot '../powershell/help/PasswordHashSync.help.psd1')
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $ModulePath 'PasswordHashSync.psd1') -Force
$data = Import-PowerShellDataFile -LiteralPath $HelpData
$common = [System.Management.Automation.Cmdlet]::CommonParameters + @('ProgressAction')
$shouldProcess = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs. The cmdlet is not run and nothing changes.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

$m = 'http://schemas.microsoft.com/maml/2004/10'
$c = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$d = 'http://schemas.microsoft.com/maml/dev/2004/10'

$settings = New-Object System.Xml.XmlWriterSettings
$settings.Indent = $true
$settings.IndentChars = '  '
$settings.NewLineChars = "`n"
$settings.Encoding = New-Object System.Text.UTF8Encoding -ArgumentList $false
$buffer = New-Object System.IO.MemoryStream
$w = [System.Xml.XmlWriter]::Create($buffer, $settings)

function Paras([string]$Text) {
    foreach ($p in ($Text.Trim() -split "`n\s*`n")) {
        $w.WriteElementString('para', $m, (($p -split "`n" | ForEach-Object { $_.Trim() }) -join ' '))
    }
}

function TypeName([type]$Type) {
    if ($Type.IsGenericType -and $Type.GetGenericTypeDefinition() -eq [Nullable`1]) { return $Type.GetGenericArguments()[0].Name }
    $Type.Name
}

function PipelineText($Attrs) {
    $kinds = @()
    if ($Attrs | Where-Object ValueFromPipeline) { $kinds += 'ByValue' }
    if ($Attrs | Where-Object ValueFromPipelineByPropertyName) { $kinds += 'ByPropertyName' }
    if ($kinds) { "True ($($kinds -join ', '))" } else { 'False' }
}

function WriteParameter($Cmd, $P, $SetAttr, [bool]$Full) {
    $attrs = @($P.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] })
    $a = if ($SetAttr) { $SetAttr } else { $attrs[0] }
    $required = if ($SetAttr) { $SetAttr.Mandatory } else { [bool]($attrs | Where-Object Mandatory) }
    $position = if ($a -and $a.Position -ge 0) { [string]$a.Position } else { 'named' }
    $isSwitch = $P.ParameterType -eq [System.Management.Automation.SwitchParameter]
    $w.WriteStartElement('command', 'parameter', $c)
    $w.WriteAttributeString('required', $required.ToString().ToLowerInvariant())
    $w.WriteAttributeString('variableLength', $P.ParameterType.IsArray.ToString().ToLowerInvariant())
    $globbing = [bool]($P.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
    $w.WriteAttributeString('globbing', $globbing.ToString().ToLowerInvariant())
    $w.WriteAttributeString('pipelineInput', (PipelineText $(if ($SetAttr) { @($SetAttr) } else { $attrs })))
    $w.WriteAttributeString('position', $position)
    $aliases = @($P.Aliases)
    $w.WriteAttributeString('aliases', $(if ($aliases.Count) { $aliases -join ', ' } else { 'none' }))
    $w.WriteElementString('name', $m, $P.Name)
    if ($Full) {
        $text = $null
        if ($shouldProcess.ContainsKey($P.Name)) { $text = $shouldProcess[$P.Name] }
        elseif ($data[$Cmd].Parameters) { $text = $data[$Cmd].Parameters[$P.Name] }
        if (-not $text) { throw "powershell/help: $Cmd has no description of -$($P.Name)" }
        $w.WriteStartElement('description', $m); Paras $text; $w.WriteEndElement()
    }
    if (-not $isSwitch) {
        $w.WriteStartElement('command', 'parameterValue', $c)
        $w.WriteAttributeString('required', 'true')
        $w.WriteAttributeString('variableLength', $P.ParameterType.IsArray.ToString().ToLowerInvariant())
        $w.WriteString((TypeName $P.ParameterType))
        $w.WriteEndElement()
    }
    if ($Full) {
        $w.WriteStartElement('type', $d); $w.WriteElementString('name', $m, $P.ParameterType.FullName); $w.WriteEndElement()
        $default = if ($data[$Cmd].Defaults -and $data[$Cmd].Defaults.ContainsKey($P.Name)) { $data[$Cmd].Defaults[$P.Name] } elseif ($isSwitch) { 'False' } else { 'None' }
        $w.WriteElementString('defaultValue', $d, $default)
    }
    $w.WriteEndElement()
}

$w.WriteStartDocument()
$w.WriteStartElement('helpItems', 'http://msh')
$w.WriteAttributeString('schema', 'maml')
foreach ($cmd in (Get-Command -Module PasswordHashSync | Sort-Object Name)) {
    $name = $cmd.Name
    $help = $data[$name]
    if (-not $help) { throw "powershell/help: no help for $name" }
    if (-not $help.Examples -or $help.Examples.Count -lt 1) { throw "powershell/help: $name has no example" }
    $w.WriteStartElement('command', 'command', $c)
    $w.WriteAttributeString('xmlns', 'maml', $null, $m)
    $w.WriteAttributeString('xmlns', 'command', $null, $c)
    $w.WriteAttributeString('xmlns', 'dev', $null, $d)
    $w.WriteStartElement('command', 'details', $c)
    $w.WriteElementString('name', $c, $name)
    $w.WriteElementString('verb', $c, $cmd.Verb)
    $w.WriteElementString('noun', $c, $cmd.Noun)
    $w.WriteStartElement('description', $m); Paras $help.Synopsis; $w.WriteEndElement()
    $w.WriteEndElement()
    $w.WriteStartElement('description', $m); Paras $help.Description; $w.WriteEndElement()

    $w.WriteStartElement('command', 'syntax', $c)
    foreach ($set in $cmd.ParameterSets) {
        $w.WriteStartElement('command', 'syntaxItem', $c)
        $w.WriteElementString('name', $m, $name)
        foreach ($sp in $set.Parameters) {
            if ($common -contains $sp.Name) { continue }
            $p = $cmd.Parameters[$sp.Name]
            $setAttr = $p.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] -and ($_.ParameterSetName -eq $set.Name -or $_.ParameterSetName -eq '__AllParameterSets') } | Select-Object -First 1
            WriteParameter $name $p $setAttr $false
        }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'parameters', $c)
    foreach ($p in ($cmd.Parameters.Values | Where-Object { $common -notcontains $_.Name } | Sort-Object Name)) {
        WriteParameter $name $p $null $true
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'inputTypes', $c)
    $inputs = @($cmd.Parameters.Values | Where-Object { $_.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] -and ($_.ValueFromPipeline -or $_.ValueFromPipelineByPropertyName) } } | Sort-Object Name)
    foreach ($p in $inputs) {
        $w.WriteStartElement('command', 'inputType', $c)
        $w.WriteStartElement('type', $d); $w.WriteElementString('name', $m, $p.ParameterType.FullName); $w.WriteEndElement()
        $w.WriteStartElement('description', $m); $w.WriteElementString('para', $m, "-$($p.Name) ($(PipelineText @($p.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] })))"); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'returnValues', $c)
    foreach ($t in ($cmd.OutputType | Select-Object -ExpandProperty Name -Unique)) {
        $w.WriteStartElement('command', 'returnValue', $c)
        $w.WriteStartElement('type', $d); $w.WriteElementString('name', $m, $t); $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    if ($help.Notes) {
        $w.WriteStartElement('maml', 'alertSet', $m)
        $w.WriteStartElement('alert', $m); Paras $help.Notes; $w.WriteEndElement()
        $w.WriteEndElement()
    }

    $w.WriteStartElement('command', 'examples', $c)
    $i = 0
    foreach ($ex in $help.Examples) {
        $i++
        $w.WriteStartElement('command', 'example', $c)
        $w.WriteElementString('title', $m, "-------------------------- Example $i --------------------------")
        $w.WriteElementString('code', $d, $ex.Code.Trim())
        $w.WriteStartElement('remarks', $d); Paras $ex.Remarks; $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('command', 'relatedLinks', $c)
    foreach ($link in @($help.Related)) {
        if (-not $link) { continue }
        $w.WriteStartElement('navigationLink', $m); $w.WriteElementString('linkText', $m, $link); $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteEndElement()
}
$w.WriteEndElement()
$w.WriteEndDocument()
$w.Flush()
$text = [System.Text.Encoding]::UTF8.GetString($buffer.ToArray()) + "`n"
[System.IO.File]::WriteAllText([System.IO.Path]::GetFullPath($OutFile), $text, (New-Object System.Text.UTF8Encoding -ArgumentList $false))
Write-Host "wrote $OutFile"

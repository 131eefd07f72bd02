// A small JSON reader for the native library's results. netstandard2.0 has no JSON parser that
// loads in both Windows PowerShell 5.1 and PowerShell 7 without extra assemblies, and
// ConvertFrom-Json differs between the editions (dates, a 2 MB limit on 5.1), so results are
// read here once, with no size limit, into dictionaries, lists, strings, longs, doubles and
// booleans, and then turned into the module's typed objects.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace PasswordHashSync.Native
{
    /// <summary>A JSON object: member names to values.</summary>
    public sealed class JsonObject : Dictionary<string, object>
    {
        public JsonObject() : base(StringComparer.Ordinal) { }

        public string Str(string name)
        {
            object v;
            if (!TryGetValue(name, out v) || v == null) return null;
            return v as string ?? Convert.ToString(v, CultureInfo.InvariantCulture);
        }

        public long Long(string name)
        {
            object v;
            if (!TryGetValue(name, out v) || v == null) return 0;
            if (v is long) return (long)v;
            if (v is double) return (long)(double)v;
            return 0;
        }

        public bool Bool(string name)
        {
            object v;
            return TryGetValue(name, out v) && v is bool && (bool)v;
        }

        /// <summary>An RFC 3339 time, or null when absent or null.</summary>
        public DateTimeOffset? Date(string name)
        {
            string s = Str(name);
            if (string.IsNullOrEmpty(s)) return null;
            DateTimeOffset d;
            if (DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out d))
                return d.ToUniversalTime();
            throw new FormatException("phsync returned an unreadable time for " + name + ": " + s);
        }

        public JsonObject Obj(string name)
        {
            object v;
            return TryGetValue(name, out v) ? v as JsonObject : null;
        }

        public List<object> Arr(string name)
        {
            object v;
            return TryGetValue(name, out v) && v is List<object> ? (List<object>)v : new List<object>();
        }
    }

    /// <summary>Recursive-descent JSON parser (RFC 8259) with a nesting limit.</summary>
    public static class Json
    {
        private const int MaxDepth = 64;

        public static object Parse(string text)
        {
            if (text == null) throw new ArgumentNullException("text");
            int i = 0;
            object v = Value(text, ref i, 0);
            Skip(text, ref i);
            if (i != text.Length) throw Error(text, i, "trailing characters");
            return v;
        }

        public static JsonObject ParseObject(string text)
        {
            JsonObject o = Parse(text) as JsonObject;
            if (o == null) throw new FormatException("phsync returned JSON that is not an object");
            return o;
        }

        public static List<object> ParseArray(string text)
        {
            List<object> a = Parse(text) as List<object>;
            if (a == null) throw new FormatException("phsync returned JSON that is not an array");
            return a;
        }

        private static FormatException Error(string s, int i, string what)
        {
            return new FormatException(string.Format(CultureInfo.InvariantCulture,
                "phsync returned malformed JSON at offset {0}: {1}", i, what));
        }

        private static void Skip(string s, ref int i)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
        }

        private static object Value(string s, ref int i, int depth)
        {
            if (depth > MaxDepth) throw Error(s, i, "nested too deeply");
            Skip(s, ref i);
            if (i >= s.Length) throw Error(s, i, "unexpected end");
            char c = s[i];
            switch (c)
            {
                case '{': return ParseObj(s, ref i, depth);
                case '[': return ParseArr(s, ref i, depth);
                case '"': return ParseString(s, ref i);
                case 't': Literal(s, ref i, "true"); return true;
                case 'f': Literal(s, ref i, "false"); return false;
                case 'n': Literal(s, ref i, "null"); return null;
            }
            if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(s, ref i);
            throw Error(s, i, "unexpected character");
        }

        private static void Literal(string s, ref int i, string word)
        {
            if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) throw Error(s, i, "bad literal");
            i += word.Length;
        }

        private static JsonObject ParseObj(string s, ref int i, int depth)
        {
            JsonObject o = new JsonObject();
            i++;
            Skip(s, ref i);
            if (i < s.Length && s[i] == '}') { i++; return o; }
            while (true)
            {
                Skip(s, ref i);
                if (i >= s.Length || s[i] != '"') throw Error(s, i, "expected a member name");
                string name = ParseString(s, ref i);
                Skip(s, ref i);
                if (i >= s.Length || s[i] != ':') throw Error(s, i, "expected ':'");
                i++;
                o[name] = Value(s, ref i, depth + 1);
                Skip(s, ref i);
                if (i < s.Length && s[i] == ',') { i++; continue; }
                if (i < s.Length && s[i] == '}') { i++; return o; }
                throw Error(s, i, "expected ',' or '}'");
            }
        }

        private static List<object> ParseArr(string s, ref int i, int depth)
        {
            List<object> a = new List<object>();
            i++;
            Skip(s, ref i);
            if (i < s.Length && s[i] == ']') { i++; return a; }
            while (true)
            {
                a.Add(Value(s, ref i, depth + 1));
                Skip(s, ref i);
                if (i < s.Length && s[i] == ',') { i++; continue; }
                if (i < s.Length && s[i] == ']') { i++; return a; }
                throw Error(s, i, "expected ',' or ']'");
            }
        }

        private static string ParseString(string s, ref int i)
        {
            i++; // opening quote
            StringBuilder b = new StringBuilder();
            while (true)
            {
                if (i >= s.Length) throw Error(s, i, "unterminated string");
                char c = s[i++];
                if (c == '"') return b.ToString();
                if (c < 0x20) throw Error(s, i - 1, "control character in string");
                if (c != '\\') { b.Append(c); continue; }
                if (i >= s.Length) throw Error(s, i, "unterminated escape");
                char e = s[i++];
                switch (e)
                {
                    case '"': b.Append('"'); break;
                    case '\\': b.Append('\\'); break;
                    case '/': b.Append('/'); break;
                    case 'b': b.Append('\b'); break;
                    case 'f': b.Append('\f'); break;
                    case 'n': b.Append('\n'); break;
                    case 'r': b.Append('\r'); break;
                    case 't': b.Append('\t'); break;
                    case 'u':
                        if (i + 4 > s.Length) throw Error(s, i, "short \\u escape");
                        int code;
                        if (!int.TryParse(s.Substring(i, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                            throw Error(s, i, "bad \\u escape");
                        b.Append((char)code);
                        i += 4;
                        break;
                    default: throw Error(s, i - 1, "bad escape");
                }
            }
        }

        private static object ParseNumber(string s, ref int i)
        {
            int start = i;
            bool integral = true;
            if (s[i] == '-') i++;
            while (i < s.Length)
            {
                char c = s[i];
                if (c >= '0' && c <= '9') { i++; continue; }
                if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { integral = false; i++; continue; }
                break;
            }
            string t = s.Substring(start, i - start);
            long l;
            if (integral && long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
            double d;
            if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
            throw Error(s, start, "bad number");
        }
    }
}

<?php
// Checks template export files with the classes of a real Zabbix frontend,
// without a database or a server:
//
//   php check.php <frontend root, e.g. /usr/share/zabbix> <file.xml>...
//
// For each file: the XML schema of the file's version, the conversions
// configuration.import applies up to the frontend's own version and its
// schema again (what an import checks before it touches the database),
// then every trigger's problem and recovery expression through the
// frontend's expression parser and validator (functions, parameters,
// periods and time shifts with user and LLD macros) and every expression
// macro {?...} of an event name through its expression macro parser.
// Exit status 1 on the first file that fails.
$root = $argv[1] ?? '';
if ($root === '' || count($argv) < 3) {
	fwrite(STDERR, "usage: php check.php <frontend root> <file.xml>...\n");
	exit(2);
}
spl_autoload_register(function ($class) use ($root) {
	static $map = null;
	if ($map === null) {
		$map = [];
		$it = new RecursiveIteratorIterator(new RecursiveDirectoryIterator("$root/include/classes"));
		foreach ($it as $f) {
			if (substr((string)$f, -4) === '.php') {
				$map[basename((string)$f, '.php')] = (string)$f;
			}
		}
	}
	if (isset($map[$class])) {
		require_once $map[$class];
	}
});
require_once "$root/include/defines.inc.php";
require_once "$root/include/func.inc.php";
// Translation helpers of the frontend (defined in its locale code).
if (!function_exists('_s')) {
	function _s($s, ...$args) { return vsprintf(preg_replace('/%\d\$s/', '%s', $s), $args); }
}
if (!function_exists('_params')) {
	function _params($s, $args) { return _s($s, ...$args); }
}
if (!function_exists('_')) {
	function _($s) { return $s; }
}

function fail(string $file, string $msg) {
	fwrite(STDERR, "$file: $msg\n");
	exit(1);
}

foreach (array_slice($argv, 2) as $file) {
	$source = file_get_contents($file);
	try {
		$data = CImportReaderFactory::getReader('xml')->read($source);
		$validator = new CXmlValidator(new CImportValidatorFactory('xml'), 'xml');
		$data = $validator->setStrict(true)->validate($data, '/');
		$from = $data['zabbix_export']['version'];
		$converters = new CImportConverterFactory();
		foreach (['6.0', '6.2', '6.4'] as $version) {
			if ($data['zabbix_export']['version'] !== $version || version_compare($version, ZABBIX_EXPORT_VERSION, '>=')) {
				continue;
			}
			$data = $converters->getObject($version)->convert($data);
			$data = $validator->validate($data, '/');
		}
	}
	catch (Throwable $e) {
		fail($file, 'import would fail: '.$e->getMessage());
	}

	$xml = simplexml_load_string($source);
	$n = 0;
	foreach ($xml->xpath('//trigger|//trigger_prototype') as $t) {
		$lld = $t->getName() === 'trigger_prototype';
		foreach (['expression', 'recovery_expression'] as $field) {
			$expr = (string)$t->$field;
			if ($expr === '') {
				continue;
			}
			$parser = new CExpressionParser(['usermacros' => true, 'lldmacros' => $lld]);
			if ($parser->parse($expr) != CParser::PARSE_SUCCESS) {
				fail($file, "trigger \"{$t->name}\", $field: ".$parser->getError());
			}
			$v = new CExpressionValidator(['usermacros' => true, 'lldmacros' => $lld]);
			if (!$v->validate($parser->getResult()->getTokens())) {
				fail($file, "trigger \"{$t->name}\", $field: ".$v->getError());
			}
			$n++;
		}
		$event = (string)$t->event_name;
		for ($pos = strpos($event, '{?'); $pos !== false; $pos = strpos($event, '{?', $pos + 2)) {
			$m = new CExpressionMacroParser(['usermacros' => true, 'lldmacros' => $lld, 'host_macro_n' => true, 'empty_host' => true]);
			if ($m->parse($event, $pos) == CParser::PARSE_FAIL) {
				fail($file, "trigger \"{$t->name}\": event name macro at \"".substr($event, $pos)."\" does not parse");
			}
			$n++;
		}
	}
	echo basename($file), ": imports into ", ZABBIX_VERSION, " (", $from, " -> ", $data['zabbix_export']['version'], "), $n expressions valid\n";
}

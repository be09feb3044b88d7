/*
 * Imported by jobcast.mjs before jobcast.js: a script evaluated as a module has no
 * document.currentScript, so this says where the files next to it (the elements'
 * stylesheets) are to be loaded from, whichever origin the page is on.
 */
window.jobcastModuleUrl = import.meta.url;
